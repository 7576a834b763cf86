// The friendly JS API of qcowkit.wasm (documented in README.md, "In the
// browser"). Every failure becomes a thrown QcowkitError carrying the core's
// message, its errno name and number; nothing aborts the module.
//
//   const qk = await createQcowkit();              // node: createQcowkit({wasmBinary})
//   const image = qk.open(fileOrBytes);            // {format: 'auto'|'qcow2'|'raw', backing, snapshot}
//   image.info(); image.check(); image.map(); image.read(0, 512);
//   await image.convert({to: 'raw', output}, (done, total) => ...);
//   image.close();
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

  // One registered device: the JS owner of a file the C++ side uses.
  function attach(device) {
    return { device: device, id: Module.qkBridge.register(device) };
  }
  function detach(handle) {
    Module.qkBridge.unregister(handle.id);
    if (handle.device.close) handle.device.close();
  }

  class Image {
    constructor(source, options) {
      options = options || {};
      // options.backing: an opened Image (any format), or a source read as raw.
      var backingImage = options.backing instanceof Image ? options.backing.live() : null;
      this.file = attach(Module.devices.fromSource(source));
      this.backing = options.backing && !backingImage ? attach(Module.devices.fromSource(options.backing)) : null;
      // options.snapshot: an internal snapshot's ID or name, opened read-only.
      var native = Module.WasmImage.open(this.file.id, options.format || 'auto', backingImage,
                                         this.backing ? this.backing.id : -1, options.snapshot || '');
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
    // options: {to: 'raw'|'qcow2', compress, clusterSize, output, signal,
    // stepBytes, part}; onProgress(done, total) runs after every step.
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
      var converter = this.live().startConvert(sink.id, options.to || 'raw', !!options.compress,
                                               options.clusterSize || 0, part ? part.start : -1,
                                               part ? part.end : 0);
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
        }
        unwrap(converter.close());
      } catch (e) {
        converter.close();
        throw e;
      } finally {
        this.converting = false;
        converter.delete();
        Module.qkBridge.unregister(sink.id);
        if (byPath) output.close();  // we opened it, so we close it
      }
      return output;
    }

    releaseDevices() {
      if (this.file) detach(this.file);
      if (this.backing) detach(this.backing);
      this.file = this.backing = null;
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
  Module.Image = Image;
  Module.open = function (source, options) { return new Image(source, options); };
})();
