// Reading a File ahead of a conversion, in a worker of its own.
//
// FileReaderSync, the only synchronous way a worker can read a File, blocks
// the converting worker for every slice and hands back a fresh buffer each
// time; in Chromium those buffers pile up in the tab (a 4 GiB conversion
// on two workers peaked near 0.7 GiB, 0.3 GiB of it dead read buffers).
// Instead a reader worker streams the file from where the conversion reads
// (Blob.stream() with a BYOB reader, so it reads straight into buffers of
// its own) and transfers each filled buffer to the converting worker, which
// copies what it needs and transfers the buffer back for the next read: a
// fixed pool, no garbage, and the reading overlaps the conversion.
//
// BlobReadAhead is the converting worker's side. take() is called from a
// synchronous device read and serves it when the buffers it holds cover
// the range; otherwise the caller reads the File itself. The conversion
// loop awaits ready() between steps, when the worker's event loop runs and
// the buffers arrive. Large reads (a converter's data) steer the stream:
// one far from where it reads restarts it after that read. Not thread-safe
// (a worker is single-threaded); one per File.
var qkReadAhead = (function () {
  // The reader worker's code, started from a Blob URL so the module needs
  // no file of its own next to it. Messages in: start {blob, from, chunk,
  // count, generation}, give {buffer} (one back for reuse). Out: filled
  // {generation, offset, buffer, length}, error {message}.
  function readerMain() {
    var pool = [], created = 0, reader = null, fileSize = 0, next = 0, generation = 0;
    var pumping = false, ended = false;  // ended: the stream gave out before the file's end
    function pump() {
      if (pumping) return;
      pumping = true;
      (async function () {
        while (pool.length && reader && !ended && next < fileSize) {
          var mine = generation, current = reader;
          var buffer = pool.pop(), filled = 0, size = buffer.byteLength;
          var want = Math.min(size, fileSize - next);
          try {
            while (filled < want) {
              // The read takes the buffer over and hands it back in `value`.
              var got = await current.read(new Uint8Array(buffer, filled, want - filled));
              if (got.value) buffer = got.value.buffer;
              if (got.done) break;
              filled += got.value.byteLength;
            }
          } catch (e) {
            if (mine === generation) throw e;
          }
          // A read cancelled by a restart keeps the buffer it took.
          if (buffer.byteLength === 0) buffer = new ArrayBuffer(size);
          if (mine !== generation) { pool.push(buffer); continue; }  // restarted meanwhile
          if (filled < want) ended = true;  // the file changed; what is missing is read directly
          if (filled === 0) { pool.push(buffer); break; }
          postMessage({ type: 'filled', generation: mine, offset: next, buffer: buffer, length: filled },
                      [buffer]);
          next += filled;
        }
      })().catch(function (e) { postMessage({ type: 'error', message: String(e && e.message || e) }); })
        .finally(function () {
          pumping = false;
          if (pool.length && reader && !ended && next < fileSize) pump();
        });
    }
    onmessage = function (event) {
      var m = event.data;
      if (m.type === 'give') {
        pool.push(m.buffer);
      } else if (m.type === 'start') {
        if (reader) reader.cancel().catch(function () {});
        fileSize = m.blob.size;
        generation = m.generation;
        ended = false;
        next = m.from;  // offsets count from the File's start, the stream from `from`
        // The pool is made once: buffers still out come back by `give`.
        for (; created < m.count; ++created) pool.push(new ArrayBuffer(m.chunk));
        reader = m.blob.slice(m.from).stream().getReader({ mode: 'byob' });
      }
      pump();
    };
  }

  var readerUrl = null;
  function supported() {
    try {
      return typeof Worker !== 'undefined' && typeof Blob !== 'undefined' &&
             typeof Blob.prototype.stream === 'function' && typeof ReadableStreamBYOBReader !== 'undefined' &&
             typeof URL !== 'undefined' && typeof URL.createObjectURL === 'function';
    } catch (e) {
      return false;
    }
  }

  class BlobReadAhead {
    // `blob`: the File. Options: chunk (bytes a buffer holds, 4 MiB),
    // count (buffers, 6), ahead (bytes ready() waits for, 12 MiB).
    constructor(blob, options) {
      options = options || {};
      this.blob = blob;
      this.chunk = options.chunk || (4 << 20);
      this.count = options.count || 6;
      this.ahead = Math.min(options.ahead || (12 << 20), this.chunk * this.count);
      this.worker = null;
      this.generation = 0;
      this.from = 0;       // where the current stream started
      this.expected = 0;   // the next offset the reader will send
      this.position = 0;   // the end of the last large read
      this.held = [];      // {offset, bytes} of the current generation, by offset
      this.waiter = null;
      this.failed = false;
      this.stats = { servedBytes: 0, missedBytes: 0, restarts: 0 };
    }

    static supported() { return supported(); }

    // Serves [offset, offset + dest.length) from the buffers held, if they
    // cover it. A large read (`large`: a conversion's data) also lets go of
    // the buffers behind it and, when it misses far from the stream, starts
    // the stream again after it.
    take(offset, dest, large) {
      var end = offset + dest.length;
      if (large) this.release(offset);
      var covered = this.copy(offset, dest);
      if (large) {
        this.position = end;
        if (covered) {
          this.stats.servedBytes += dest.length;
        } else {
          this.stats.missedBytes += dest.length;
          // Within the window the reader is filling: its buffers come soon.
          var filling = offset >= this.from && offset < this.expected + this.chunk * this.count;
          if (!this.worker || !filling) this.restart(end);
        }
      }
      return covered;
    }

    copy(offset, dest) {
      var end = offset + dest.length, at = offset;
      for (var i = 0; i < this.held.length && at < end; ++i) {
        var b = this.held[i], bEnd = b.offset + b.bytes.length;
        if (bEnd <= at) continue;
        if (b.offset > at) return false;
        var n = Math.min(end, bEnd) - at;
        dest.set(b.bytes.subarray(at - b.offset, at - b.offset + n), at - offset);
        at += n;
      }
      return at === end;
    }

    release(before) {
      while (this.held.length && this.held[0].offset + this.held[0].bytes.length <= before) {
        var b = this.held.shift();
        this.give(b.bytes.buffer);
      }
    }

    give(buffer) {
      if (this.worker) this.worker.postMessage({ type: 'give', buffer: buffer }, [buffer]);
    }

    restart(from) {
      if (this.failed || from >= this.blob.size) return;
      if (!this.worker) {
        if (!readerUrl)
          readerUrl = URL.createObjectURL(new Blob(['(' + readerMain.toString() + ')()'],
                                                   { type: 'text/javascript' }));
        try {
          this.worker = new Worker(readerUrl);
        } catch (e) {
          this.failed = true;  // no workers here: every read stays synchronous
          return;
        }
        var self = this;
        this.worker.onmessage = function (event) { self.received(event.data); };
        this.worker.onerror = function () { self.fail(); };
      } else {
        this.stats.restarts++;
      }
      // Buffers of the old stream go back to the pool.
      for (var i = 0; i < this.held.length; ++i) this.give(this.held[i].bytes.buffer);
      this.held = [];
      this.generation++;
      this.from = this.expected = from;
      this.worker.postMessage({ type: 'start', blob: this.blob, from: from, chunk: this.chunk,
                                count: this.count, generation: this.generation });
    }

    received(m) {
      if (m.type === 'error') return this.fail();
      if (m.generation !== this.generation) return this.give(m.buffer);
      this.held.push({ offset: m.offset, bytes: new Uint8Array(m.buffer, 0, m.length) });
      this.expected = m.offset + m.length;
      this.wake();
    }

    fail() {
      this.failed = true;
      this.close();
    }

    wake() {
      if (this.waiter && this.enough()) {
        var w = this.waiter;
        this.waiter = null;
        w();
      }
    }

    // Whether the buffers reach far enough past the last large read, or
    // nothing more is coming.
    enough() {
      if (!this.worker || this.expected >= this.blob.size) return true;
      return this.expected >= this.position + this.ahead;
    }

    // Resolves once the buffers reach `ahead` bytes past the last large
    // read (or the file's end), or when the reader has nothing to do; at
    // most after 250 ms, so a stalled reader cannot stall the conversion.
    ready() {
      this.release(this.position);
      if (this.enough()) return Promise.resolve();
      var self = this;
      return new Promise(function (resolve) {
        var timer = setTimeout(function () { if (self.waiter === done) self.waiter = null; resolve(); }, 250);
        function done() { clearTimeout(timer); resolve(); }
        self.waiter = done;
      });
    }

    // Stops the reader and lets go of the buffers; a later large read
    // starts a new one.
    close() {
      if (this.worker) this.worker.terminate();
      this.worker = null;
      this.held = [];
      if (this.waiter) { var w = this.waiter; this.waiter = null; w(); }
    }
  }

  return { BlobReadAhead: BlobReadAhead };
})();
