// Module.qkBridge: what the EM_JS functions in js_bridge.cpp call. It owns
// the registry of JS devices and turns every JS exception into an errno
// (Emscripten's numbering) plus a message that C++ fetches
// with lastError, so nothing thrown in JS unwinds through wasm frames.
Module.qkBridge = (function () {
  var devices = new Map();
  var nextId = 1;
  var bridge = { lastError: '' };

  // Emscripten's errno values, by name (filled in from the C++ side once
  // the runtime is up: they differ from Linux's).
  function errnos() { return bridge.errnos || (bridge.errnos = Module.errnoTable()); }
  function errnoOf(e, fallback) {
    var table = errnos();
    if (e && typeof e.errno === 'string' && table[e.errno]) return table[e.errno];
    return table[fallback || 'EIO'];
  }
  bridge.errnoName = function (code) {
    var table = errnos();
    for (var name in table) if (table[name] === code) return name;
    return 'E' + code;
  };
  function fail(e, fallback) {
    bridge.lastError = String((e && e.message) || e);
    return errnoOf(e, fallback);
  }
  function heap(ptr, length) { return HEAPU8.subarray(ptr, ptr + length); }
  function device(id) {
    var d = devices.get(id);
    if (!d) {
      var e = new Error('no JS device with id ' + id + ' (closed, or never registered)');
      e.errno = 'EBADF';
      throw e;
    }
    return d;
  }

  bridge.register = function (dev) {
    var id = nextId++;
    devices.set(id, dev);
    return id;
  };
  bridge.unregister = function (id) { devices.delete(id); };

  bridge.deviceSize = function (id) {
    try { return device(id).size(); } catch (e) { fail(e); return -1; }
  };
  bridge.deviceReadOnly = function (id) {
    try { return device(id).readOnly ? 1 : 0; } catch (e) { return 1; }
  };
  bridge.deviceRead = function (id, offset, ptr, length) {
    try { device(id).read(offset, heap(ptr, length)); return 0; } catch (e) { return fail(e); }
  };
  bridge.deviceWrite = function (id, offset, ptr, length) {
    try { device(id).write(offset, heap(ptr, length)); return 0; } catch (e) { return fail(e); }
  };
  bridge.deviceTruncate = function (id, size) {
    try { device(id).truncate(size); return 0; } catch (e) { return fail(e); }
  };
  bridge.deviceFlush = function (id) {
    try { var d = device(id); if (d.flush) d.flush(); return 0; } catch (e) { return fail(e); }
  };
  // The C++ side is done with one view of the device. Several views may
  // share a registration (the browser host opens a file each time a layer,
  // an extent or a probe needs it), so the registration stays until its JS
  // owner detaches it, which also decides whether the underlying file stays
  // open (see Image.close in qcowkit-api.js).
  bridge.deviceClose = function () { return 0; };

  // Codec calls: a decoder fills exactly the output (0 or an errno); an
  // encoder returns the packed length, 0 when it does not fit, or -errno.
  function decoder(name) {
    return function (inPtr, inLength, outPtr, outLength) {
      try { qkCodecs[name](heap(inPtr, inLength), heap(outPtr, outLength)); return 0; }
      catch (e) { return fail(e); }
    };
  }
  function encoder(name) {
    return function (inPtr, inLength, outPtr, outCapacity) {
      try {
        var packed = qkCodecs[name](heap(inPtr, inLength), outCapacity);
        if (!packed) return 0;
        heap(outPtr, packed.length).set(packed);
        return packed.length;
      } catch (e) { return -fail(e); }
    };
  }
  bridge.inflateRaw = decoder('inflateRaw');
  bridge.zstdDecode = decoder('zstdDecode');
  bridge.zlibDecode = decoder('zlibDecode');
  bridge.deflateRaw = encoder('deflateRaw');
  bridge.zlibEncode = encoder('zlibEncode');
  return bridge;
})();
