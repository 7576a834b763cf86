// Codec calls from js_codecs.cpp (through Module.qkBridge). The libraries
// come from the QcowkitCodecs prelude (see tools/bundle-codecs.js):
//   fflate  raw deflate decoding, straight into a fixed-size buffer, so a
//           deflate bomb cannot make it allocate
//   pako    raw deflate encoding with a 4 KiB window (windowBits 12), the
//           window QEMU's decoder accepts; fflate always uses 32 KiB
//   fzstd   zstd decoding, one frame at a time
// zlib streams (VMDK grains) are the same deflate behind RFC 1950's header:
// decoded with fflate, encoded with pako's 32 KiB window, as zlib writes them.
var qkCodecs = (function () {
  var scratch = new Uint8Array(0);
  // Bound on the zstd window a frame may ask for: a hostile header must
  // not make us allocate gigabytes (qcow2 clusters are 2 MiB at most).
  var ZSTD_MAX_WINDOW = 32 << 20;

  function scratchOf(n) {
    if (scratch.length < n) scratch = new Uint8Array(n);
    return scratch.subarray(0, n);
  }

  // Decodes raw deflate into exactly out.length bytes. One spare byte in the
  // decoder's buffer reveals a stream that decodes to more than that.
  function inflateRaw(input, out) {
    var tmp = scratchOf(out.length + 1);
    var produced;
    try {
      produced = QcowkitCodecs.fflate.inflateSync(input, { out: tmp });
    } catch (e) {
      throw new Error('corrupt deflate stream (' + e.message + ')');
    }
    if (produced.length > out.length)
      throw new Error('deflate stream decodes to more than ' + out.length + ' bytes');
    if (produced.length < out.length)
      throw new Error('deflate stream ends after ' + produced.length + ' of ' + out.length + ' bytes');
    out.set(produced);
  }

  // Raw deflate with QEMU's parameters; null when it does not fit in `capacity`.
  function deflateRaw(input, capacity) {
    var packed = QcowkitCodecs.pako.deflateRaw(input, { level: 6, windowBits: 12, memLevel: 9 });
    return packed.length < capacity ? packed : null;
  }

  // zlib streams (RFC 1950), as VMDK stores compressed grains: the two-byte
  // header checked here, then the raw deflate body decoded as above (the
  // Adler-32 trailer and any sector padding after it are not looked at).
  function zlibDecode(input, out) {
    if (input.length < 2) throw new Error('zlib stream of ' + input.length + ' bytes has no header');
    var cmf = input[0], flg = input[1];
    if ((cmf & 15) !== 8 || (cmf >> 4) > 7 || ((cmf << 8) | flg) % 31 !== 0)
      throw new Error('corrupt zlib stream (header 0x' + ((cmf << 8) | flg).toString(16) + ')');
    if (flg & 0x20) throw new Error('corrupt zlib stream (it asks for a preset dictionary)');
    inflateRaw(input.subarray(2), out);
  }

  // A zlib stream (default window, level 6); null when it does not fit in `capacity`.
  function zlibEncode(input, capacity) {
    var packed = QcowkitCodecs.pako.deflate(input, { level: 6 });
    return packed.length < capacity ? packed : null;
  }

  function u32le(d, p) { return (d[p] | (d[p + 1] << 8) | (d[p + 2] << 16) | (d[p + 3] << 24)) >>> 0; }

  // Walks one zstd frame (or skippable frame) starting at `pos` without
  // decoding it: returns its end, its content size (-1 if not recorded) and
  // whether it is skippable.
  function zstdFrame(d, pos) {
    if (d.length - pos < 8) throw new Error('zstd stream ends inside a frame header');
    var magic = u32le(d, pos);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      var skip = pos + 8 + u32le(d, pos + 4);
      if (skip > d.length) throw new Error('zstd skippable frame runs past the end of the data');
      return { end: skip, contentSize: -1, skippable: true };
    }
    if (magic !== 0xfd2fb528) throw new Error('not a zstd frame (magic 0x' + magic.toString(16) + ')');
    var fhd = d[pos + 4];
    if (fhd & 8) throw new Error('zstd frame header has its reserved bit set');
    var fcsFlag = fhd >> 6, single = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1, dictFlag = fhd & 3;
    var p = pos + 5;
    var window = 0;
    if (!single) {
      var wd = d[p++];
      var base = Math.pow(2, 10 + (wd >> 3));
      window = base + (base / 8) * (wd & 7);
    }
    p += [0, 1, 2, 4][dictFlag];
    var fcsBytes = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag];
    var contentSize = -1;
    if (fcsBytes) {
      contentSize = 0;
      for (var i = fcsBytes - 1; i >= 0; --i) contentSize = contentSize * 256 + d[p + i];
      if (fcsBytes === 2) contentSize += 256;
      p += fcsBytes;
    }
    if (single) window = contentSize;
    if (window > ZSTD_MAX_WINDOW) throw new Error('zstd frame asks for a ' + window + '-byte window');
    for (;;) {
      if (p + 3 > d.length) throw new Error('zstd stream ends inside a block header');
      var bh = d[p] | (d[p + 1] << 8) | (d[p + 2] << 16);
      var type = (bh >> 1) & 3, size = bh >>> 3;
      p += 3;
      if (type === 3) throw new Error('zstd block has the reserved type');
      p += type === 1 ? 1 : size;
      if (p > d.length) throw new Error('zstd block runs past the end of the data');
      if (bh & 1) break;
    }
    if (checksum) p += 4;
    if (p > d.length) throw new Error('zstd frame checksum runs past the end of the data');
    return { end: p, contentSize: contentSize, skippable: false };
  }

  // Decodes zstd frames until out is exactly full. Bytes after that (sector
  // padding, or the next compressed cluster) are never looked at.
  function zstdDecode(input, out) {
    var done = 0, pos = 0;
    while (done < out.length) {
      if (pos >= input.length)
        throw new Error('zstd data ends after ' + done + ' of ' + out.length + ' bytes');
      var frame = zstdFrame(input, pos);
      if (!frame.skippable) {
        if (frame.contentSize > out.length - done)
          throw new Error('zstd frame decodes to more than the ' + out.length + '-byte cluster');
        var start = done;
        var decoder = new QcowkitCodecs.fzstd.Decompress(function (chunk) {
          if (chunk.length > out.length - done)
            throw new Error('zstd frame decodes to more than the ' + out.length + '-byte cluster');
          out.set(chunk, done);
          done += chunk.length;
        });
        try {
          decoder.push(input.subarray(pos, frame.end), true);
        } catch (e) {
          throw new Error('corrupt zstd frame (' + e.message + ')');
        }
        if (frame.contentSize >= 0 && done - start !== frame.contentSize)
          throw new Error('zstd frame decoded to ' + (done - start) + ' bytes, its header says ' +
                          frame.contentSize);
      }
      pos = frame.end;
    }
  }

  return { inflateRaw: inflateRaw, deflateRaw: deflateRaw, zstdDecode: zstdDecode,
           zlibDecode: zlibDecode, zlibEncode: zlibEncode };
})();
