// JS devices: the byte stores a JsDevice (js_device.cpp) reads and writes.
// Each answers size(), readOnly, read(offset, dest), write(offset, src),
// truncate(size), flush() and close(), synchronously; errors are thrown
// (with an `errno` name when one fits) and reported to C++ by qkBridge.
var qkDevices = (function () {
  function ioError(message, errno) {
    var e = new Error(message);
    e.errno = errno || 'EIO';
    return e;
  }
  function readOnlyError() { return ioError('the device is read-only', 'EROFS'); }

  // A Uint8Array (or ArrayBuffer), read-only: for tests and small images.
  class BytesDevice {
    constructor(bytes) {
      this.bytes = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
      this.readOnly = true;
    }
    size() { return this.bytes.length; }
    read(offset, dest) { dest.set(this.bytes.subarray(offset, offset + dest.length)); }
    write() { throw readOnlyError(); }
    truncate() { throw readOnlyError(); }
    flush() {}
    close() {}
  }

  // A growable in-memory file: a conversion output for tests and small images.
  class MemoryDevice {
    constructor() { this.buffer = new Uint8Array(0); this.length = 0; this.readOnly = false; }
    size() { return this.length; }
    reserve(n) {
      if (n <= this.buffer.length) return;
      var grown = new Uint8Array(Math.max(n, this.buffer.length * 2));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    read(offset, dest) { dest.set(this.buffer.subarray(offset, offset + dest.length)); }
    write(offset, src) {
      this.reserve(offset + src.length);
      this.buffer.set(src, offset);
      this.length = Math.max(this.length, offset + src.length);
    }
    truncate(n) {
      if (n < this.length) this.buffer.fill(0, n, this.length);
      this.reserve(n);
      this.length = n;
    }
    flush() {}
    close() {}
    bytes() { return this.buffer.subarray(0, this.length); }
  }

  // A Blob or File, read in slices with FileReaderSync: only in a worker,
  // never loaded whole. Small reads (qcow2 tables, compressed clusters) go
  // through an 8 MiB read-ahead window, because each FileReaderSync call has
  // a fixed cost far above that of copying a megabyte. Large reads (a
  // conversion's data, a MiB or more) are served, where the browser can,
  // by a reader worker streaming the file ahead of them (read-ahead.js);
  // what it does not hold yet is read here.
  class BlobDevice {
    constructor(blob) {
      if (typeof FileReaderSync === 'undefined')
        throw ioError('reading a File needs FileReaderSync: open it inside a Web Worker', 'ENOTSUP');
      this.blob = blob;
      this.readAhead = qkReadAhead.BlobReadAhead.supported() ? new qkReadAhead.BlobReadAhead(blob) : null;
      this.reader = new FileReaderSync();
      this.readOnly = true;
      this.windowStart = 0;
      this.window = new Uint8Array(0);
      this.sinceNudge = 0;
    }
    size() { return this.blob.size; }
    slice(start, end) {
      this.sinceNudge += end - start;
      if (this.sinceNudge >= BlobDevice.NUDGE_EVERY) { this.sinceNudge = 0; nudgeCollector(); }
      var bytes = new Uint8Array(this.reader.readAsArrayBuffer(this.blob.slice(start, end)));
      if (bytes.length !== end - start)
        throw ioError('short read at offset ' + start + ': the file changed or was removed');
      return bytes;
    }
    read(offset, dest) {
      var end = offset + dest.length;
      var large = dest.length >= BlobDevice.LARGE;
      if (this.readAhead && this.readAhead.take(offset, dest, large)) return;
      if (dest.length >= BlobDevice.WINDOW) { dest.set(this.slice(offset, end)); return; }
      var w = this.window;
      if (offset < this.windowStart || end > this.windowStart + w.length) {
        this.windowStart = offset;
        this.window = w = this.slice(offset, Math.min(this.size(), offset + BlobDevice.WINDOW));
      }
      dest.set(w.subarray(offset - this.windowStart, end - this.windowStart));
    }
    write() { throw readOnlyError(); }
    truncate() { throw readOnlyError(); }
    flush() {}
    close() {
      this.window = new Uint8Array(0);
      if (this.readAhead) this.readAhead.close();
    }
  }
  BlobDevice.WINDOW = 8 << 20;
  BlobDevice.LARGE = 1 << 20;
  BlobDevice.NUDGE_EVERY = 64 << 20;

  // Each FileReaderSync read returns a fresh ArrayBuffer that dies at once,
  // but the collector notices them late: reading gigabytes, a worker then
  // holds hundreds of MiB of dead slices. Filling the young generation with
  // short-lived objects makes it run a scavenge, which frees them.
  function nudgeCollector() {
    var junk = [];
    for (var i = 0; i < 300000; ++i) junk.push({ i: i });
    return junk.length;
  }

  // An Origin Private File System file through its sync access handle (in a
  // worker): random access without holding the file in memory.
  class OpfsDevice {
    constructor(handle) { this.handle = handle; this.readOnly = false; }
    size() { return this.handle.getSize(); }
    read(offset, dest) {
      var n = this.handle.read(dest, { at: offset });
      if (n !== dest.length) throw ioError('short read at offset ' + offset + ' of the OPFS file');
    }
    write(offset, src) {
      var n = this.handle.write(src, { at: offset });
      if (n !== src.length) throw ioError('short write at offset ' + offset + ' (is the disk full?)', 'ENOSPC');
    }
    truncate(n) { this.handle.truncate(n); }
    flush() { this.handle.flush(); }
    close() { this.handle.close(); }
  }

  // The output of a streamed conversion (convert({stream: true})): takes
  // appends only, each handed at once to `onChunk(bytes)` (a copy the
  // callee owns: post it to a download, a socket, an upload) and never kept.
  // Backpressure: the conversion awaits drain() between steps, which waits
  // while more than `limit` bytes went out since the consumer last called
  // consumed() (it says it has room again).
  class StreamDevice {
    constructor(onChunk, options) {
      this.onChunk = onChunk;
      this.readOnly = false;
      this.length = 0;    // bytes handed out
      this.reserved = 0;  // what the writer announced (truncate) before writing it
      this.outstanding = 0;
      this.limit = (options && options.limit) || (32 << 20);
      this.waiter = null;
    }
    size() { return this.reserved; }
    read() { throw ioError('a stream cannot be read back', 'ENOTSUP'); }
    write(offset, src) {
      if (offset !== this.length || offset + src.length > this.reserved)
        throw ioError('a stream takes appends only: write at ' + offset + ' after ' + this.length + ' bytes', 'ESPIPE');
      this.onChunk(src.slice());
      this.length += src.length;
      this.outstanding += src.length;
    }
    truncate(n) {
      if (n < this.length) throw ioError('a stream cannot take back what it sent', 'ESPIPE');
      this.reserved = n;
    }
    flush() {}
    close() {}
    consumed() {
      this.outstanding = 0;
      if (this.waiter) { var w = this.waiter; this.waiter = null; w(); }
    }
    drain() {
      if (this.outstanding <= this.limit) return Promise.resolve();
      var self = this;
      return new Promise(function (resolve) { self.waiter = resolve; });
    }
  }

  // A file in node, by path, through a file descriptor.
  class NodeFileDevice {
    constructor(path, options) {
      options = options || {};
      this.fs = require('fs');
      this.path = path;
      this.readOnly = !options.write;
      var flags = options.create ? 'w+' : (this.readOnly ? 'r' : 'r+');
      try {
        this.fd = this.fs.openSync(path, flags);
      } catch (e) {
        throw ioError(path + ': ' + e.message, e.code === 'ENOENT' ? 'ENOENT' : 'EIO');
      }
    }
    size() { return this.fs.fstatSync(this.fd).size; }
    read(offset, dest) {
      for (var done = 0; done < dest.length;) {
        var n = this.fs.readSync(this.fd, dest, done, dest.length - done, offset + done);
        if (n === 0) throw ioError(this.path + ': short read at offset ' + (offset + done));
        done += n;
      }
    }
    write(offset, src) {
      for (var done = 0; done < src.length;)
        done += this.fs.writeSync(this.fd, src, done, src.length - done, offset + done);
    }
    truncate(n) { this.fs.ftruncateSync(this.fd, n); }
    flush() { if (!this.readOnly) this.fs.fdatasyncSync(this.fd); }
    close() { if (this.fd !== undefined) { this.fs.closeSync(this.fd); this.fd = undefined; } }
  }

  // Picks a device for what the caller handed us.
  function fromSource(source) {
    if (source && typeof source.read === 'function' && typeof source.size === 'function') return source;
    if (source instanceof Uint8Array || source instanceof ArrayBuffer) return new BytesDevice(source);
    if (typeof Blob !== 'undefined' && source instanceof Blob) return new BlobDevice(source);
    if (typeof source === 'string' && ENVIRONMENT_IS_NODE) return new NodeFileDevice(source);
    throw ioError('cannot open ' + Object.prototype.toString.call(source) +
                  ': pass a File, Blob, Uint8Array, ArrayBuffer, device object or (in node) a path', 'EINVAL');
  }

  return { BytesDevice: BytesDevice, MemoryDevice: MemoryDevice, BlobDevice: BlobDevice,
           OpfsDevice: OpfsDevice, NodeFileDevice: NodeFileDevice, StreamDevice: StreamDevice,
           fromSource: fromSource };
})();
Module.devices = qkDevices;
Module.codecs = qkCodecs;  // for tests and for pages that want the same codecs
