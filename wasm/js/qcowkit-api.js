// The friendly JS API of qcowkit.wasm (documented in README.md, "In the
// browser"). Every failure becomes a thrown QcowkitError carrying the core's
// message, its errno name and number; nothing aborts the module.
//
//   const qk = await createQcowkit();              // node: createQcowkit({wasmBinary})
//   const image = qk.open(fileOrBytes, {files: [otherFiles...]});
//   image.info(); image.check(); image.map(); image.read(0, 512);
//   await image.convert({to: 'raw', output}, (done, total) => ...);
//   image.close();
//
// Formats in: whatever the core reads (qk.formats(): qcow2, raw, vpc, vdi,
// vmdk, qcow, ...), found by content. A backing file is read only when it
// is among `files` (by file name, as the image names it); otherwise the
// error names the file to add. Formats out: raw, qcow2 and the core's
// writable formats (vmdk, vpc, vdi, ...) with their qemu-img -o options.
(function () {
  class QcowkitError extends Error {
    constructor(message, code) {
      super(message);
      this.name = 'QcowkitError';
      this.code = code;
      this.errno = Module.qkBridge.errnoName(code);
    }
  }

  function unwrap(result) {
    if (result && result.error) throw new QcowkitError(result.error.message, result.error.code);
    return result.value;
  }
  function lastError() { return unwrap(Module.lastError()); }
  function checkNumber(name, value, min) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
      throw new QcowkitError(name + ' must be an integer >= ' + min + ', got ' + value,
                             Module.errnoTable().EINVAL);
  }
  // Lets a worker take messages (cancel) and a page repaint between steps.
  // A MessageChannel round trip is not clamped to 4 ms as nested timers are.
  function yieldToEventLoop() {
    return new Promise(function (resolve) {
      if (typeof MessageChannel === 'undefined') return setTimeout(resolve, 0);
      var channel = new MessageChannel();
      channel.port1.onmessage = function () { channel.port1.close(); resolve(); };
      channel.port2.postMessage(0);
    });
  }

  // The file name a source is known by: a File's name, a node path's last
  // part, a {name, source} pair's name, or `fallback`.
  function nameOf(source, fallback) {
    if (typeof source === 'string') return source.split(/[\\/]/).pop();
    if (source && typeof source === 'object' && typeof source.name === 'string' && source.name &&
        typeof source.read !== 'function') return source.name;  // a File, or {name, source}
    return fallback;
  }
  function unwrapSource(source) {
    var isBlob = typeof Blob !== 'undefined' && source instanceof Blob;
    return source && typeof source === 'object' && !isBlob && 'source' in source ? source.source : source;
  }

  // One registered device: the JS owner of a file the C++ side uses.
  function attach(device) {
    return { device: device, id: Module.qkBridge.register(device) };
  }
  function detach(handle) {
    Module.qkBridge.unregister(handle.id);
    if (handle.device.close) handle.device.close();
  }

  class Image {
    // source: a File, Blob, Uint8Array, ArrayBuffer, device object, node
    // path, or {name, source}. options: {format, files, name, backing,
    // snapshot}:
    //   files    more sources (same kinds) the image may name: its backing
    //            file, found by file name among these and nowhere else
    //   name     the file name of a source that has none (bytes); 'image'
    //   backing  instead of files: the backing layer itself, an opened
    //            Image, or a source read as raw (qcow2 images only)
    //   snapshot an internal snapshot's ID or name, opened read-only
    constructor(source, options) {
      options = options || {};
      this.name = nameOf(source, options.name || 'image');
      this.handles = [];
      var native;
      if (options.backing) {
        var backingImage = options.backing instanceof Image ? options.backing.live() : null;
        var file = attach(Module.devices.fromSource(unwrapSource(source)));
        this.handles.push(file);
        var below = backingImage ? null : attach(Module.devices.fromSource(unwrapSource(options.backing)));
        if (below) this.handles.push(below);
        native = Module.WasmImage.open(file.id, options.format || 'auto', backingImage,
                                       below ? below.id : -1, options.snapshot || '');
      } else {
        var named = [];
        try {
          var all = [source].concat(options.files || []);
          for (var i = 0; i < all.length; ++i) {
            var name = i === 0 ? this.name : nameOf(all[i], null);
            if (!name)
              throw new QcowkitError('files[' + (i - 1) + '] has no file name: pass a File, a path, ' +
                                     'or {name, source}', Module.errnoTable().EINVAL);
            var handle = attach(Module.devices.fromSource(unwrapSource(all[i])));
            this.handles.push(handle);
            named.push({ name: name, id: handle.id });
          }
        } catch (e) {
          this.releaseDevices();
          throw e;
        }
        native = Module.WasmImage.openNamed(named, this.name, options.format || 'auto', options.snapshot || '');
      }
      if (!native) {
        this.releaseDevices();
        lastError();
      }
      this.native = native;
    }
    live() {
      if (!this.native) throw new QcowkitError('the image is closed', Module.errnoTable().EBADF);
      return this.native;
    }
    info() { return unwrap(this.live().info()); }
    check() { return unwrap(this.live().check()); }
    map(offset, length) {
      var size = this.info().virtualSize;
      offset = offset === undefined ? 0 : offset;
      length = length === undefined ? size - offset : length;
      checkNumber('offset', offset, 0);
      checkNumber('length', length, 0);
      return unwrap(this.live().map(offset, length));
    }
    // Bytes of each kind per bin: {data, zero, unallocated, compressed}
    // Float64Arrays of `bins` entries, plus totals.
    mapSummary(bins) {
      checkNumber('bins', bins, 1);
      var flat = unwrap(this.live().mapSummary(bins));
      var out = { bins: bins, data: new Float64Array(bins), zero: new Float64Array(bins),
                  unallocated: new Float64Array(bins), compressed: new Float64Array(bins),
                  totals: { data: 0, zero: 0, unallocated: 0, compressed: 0 } };
      var kinds = ['data', 'zero', 'unallocated', 'compressed'];
      for (var i = 0; i < bins; ++i) {
        for (var k = 0; k < 4; ++k) {
          out[kinds[k]][i] = flat[i * 4 + k];
          out.totals[kinds[k]] += flat[i * 4 + k];
        }
      }
      return out;
    }
    read(offset, length) {
      checkNumber('offset', offset, 0);
      checkNumber('length', length, 0);
      return unwrap(this.live().read(offset, length));
    }

    // Converts into options.output (a device object, or a path in node; a
    // fresh in-memory file when omitted). Resolves to the output device.
    // options: {to, formatOptions, fileName, sizeAlignment, compress,
    // clusterSize, output, signal, stepBytes, part}; onProgress(done, total)
    // runs after every step.
    //   to             'raw', 'qcow2', or a writable format of the core:
    //                  'vmdk', 'vpc', 'vdi', ... (qemu-img's names)
    //   formatOptions  that format's qemu-img -o options as strings, e.g.
    //                  {subformat: 'streamOptimized'} for vmdk,
    //                  {subformat: 'fixed', force_size: 'on'} for vpc
    //   fileName       the output's file name, which vmdk records (default:
    //                  the output path's, else the format's default)
    //   sizeAlignment  the new image's size rounded up to this power of two
    //                  (Azure takes fixed VHDs of whole MiB: 1048576)
    //   stream         qcow2 only: write the image front to back, each byte
    //                  once, onto an output that takes appends only (a
    //                  devices.StreamDevice feeding a download); the source
    //                  is read twice
    // part {start, end} (raw only, 4 MiB aligned): copy just that range into
    // an output that already has the image's size and reads as zeroes, so
    // several workers can fill one file together.
    async convert(options, onProgress) {
      options = options || {};
      var byPath = typeof options.output === 'string';
      var output = options.output === undefined ? new Module.devices.MemoryDevice()
                 : byPath ? new Module.devices.NodeFileDevice(options.output, { write: true, create: true })
                 : options.output;
      var sink = attach(output);
      var part = options.part;
      if (part) {
        checkNumber('part.start', part.start, 0);
        checkNumber('part.end', part.end, 0);
      }
      var request = { to: options.to || 'raw', compress: !!options.compress, stream: !!options.stream,
                      clusterSize: options.clusterSize || 0,
                      fileName: options.fileName || (byPath ? nameOf(options.output, '') : ''),
                      sizeAlignment: options.sizeAlignment || 0 };
      if (options.formatOptions) {
        request.formatOptions = {};
        for (var key in options.formatOptions) request.formatOptions[key] = String(options.formatOptions[key]);
      }
      if (part) { request.partStart = part.start; request.partEnd = part.end; }
      var converter = this.live().startConvert(sink.id, request);
      if (!converter) {
        Module.qkBridge.unregister(sink.id);
        lastError();
      }
      var step = options.stepBytes || (8 << 20);
      this.converting = true;  // close() must wait: the converter reads this image
      try {
        for (;;) {
          if (options.signal && options.signal.aborted)
            throw new QcowkitError('conversion cancelled', Module.errnoTable().ECANCELED);
          var progress = unwrap(converter.step(step));
          if (onProgress) onProgress(progress.done, progress.total);
          if (progress.finished) break;
          await yieldToEventLoop();
          if (output.drain) await output.drain();  // a stream's consumer is behind
          await this.readAheadReady();
        }
        unwrap(converter.close());
      } catch (e) {
        converter.close();
        throw e;
      } finally {
        this.converting = false;
        this.stopReadAhead();  // its worker and buffers are not needed until the next conversion
        converter.delete();
        Module.qkBridge.unregister(sink.id);
        if (byPath) output.close();  // we opened it, so we close it
      }
      return output;
    }

    // Waits (briefly) for the source files' read-ahead to hold the next
    // step's data, so the step finds it instead of reading the file itself.
    readAheadReady() {
      return Promise.all(this.readAheads().map(function (r) { return r.ready(); }));
    }
    stopReadAhead() {
      this.readAheads().forEach(function (r) { r.close(); });
    }
    // Bytes of large reads the read-ahead served and missed, summed over
    // the source files (zeroes where the browser cannot read ahead).
    readAheadStats() {
      var sum = { servedBytes: 0, missedBytes: 0, restarts: 0 };
      this.readAheads().forEach(function (r) {
        for (var k in sum) sum[k] += r.stats[k];
      });
      return sum;
    }
    // The read-ahead of each source file that has one (a File in a browser).
    readAheads() {
      return this.handles.map(function (h) { return h.device.readAhead; }).filter(Boolean);
    }

    releaseDevices() {
      for (var i = 0; i < this.handles.length; ++i) detach(this.handles[i]);
      this.handles = [];
    }
    close() {
      if (!this.native) return;
      if (this.converting)
        throw new QcowkitError('the image is being converted: cancel the conversion (its signal) ' +
                               'and wait for it before closing', Module.errnoTable().EBUSY);
      var result = this.native.close();
      this.native.delete();
      this.native = null;
      this.releaseDevices();
      unwrap(result);
    }
  }

  Module.QcowkitError = QcowkitError;
  // Every format name the module opens (qcow2, raw, then the core's table).
  Module.formats = function () { return unwrap(Module.formatNames()); };
  Module.Image = Image;
  Module.open = function (source, options) { return new Image(source, options); };
})();
