#include "js_codecs.hpp"

#include <string>

#include "js_bridge.hpp"

namespace qcowkit::wasm {
namespace {

Status decode_status(int rc, const char* codec, size_t in, size_t out) {
  if (rc == 0) return {};
  return make_error(rc, std::string(codec) + " decode of " + std::to_string(in) + " bytes into " +
                            std::to_string(out) + " failed: " + js::last_js_error());
}

class JsDeflateCodec final : public Codec {
 public:
  Status decompress(ConstByteSpan input, ByteSpan output) const override {
    const int rc = js::inflate_raw(input.data(), static_cast<double>(input.size()), output.data(),
                                   static_cast<double>(output.size()));
    return decode_status(rc, "deflate", input.size(), output.size());
  }

  Result<std::vector<uint8_t>> compress(ConstByteSpan input, size_t max_size) const override {
    std::vector<uint8_t> out(max_size);
    const double n = js::deflate_raw(input.data(), static_cast<double>(input.size()), out.data(),
                                     static_cast<double>(out.size()));
    if (n < 0)
      return make_error(static_cast<int>(-n), "deflate encode failed: " + js::last_js_error());
    // n == max_size would not save anything: store the cluster plainly.
    if (n == 0 || n >= static_cast<double>(max_size)) return std::vector<uint8_t>{};
    out.resize(static_cast<size_t>(n));
    return out;
  }
};

class JsZstdCodec final : public Codec {
 public:
  Status decompress(ConstByteSpan input, ByteSpan output) const override {
    const int rc = js::zstd_decode(input.data(), static_cast<double>(input.size()), output.data(),
                                   static_cast<double>(output.size()));
    return decode_status(rc, "zstd", input.size(), output.size());
  }

  Result<std::vector<uint8_t>> compress(ConstByteSpan, size_t) const override {
    return make_error(ENOTSUP, "zstd compression is not available in the WebAssembly build "
                               "(it writes deflate)");
  }
};

class JsZlibStreamCodec final : public Codec {
 public:
  Status decompress(ConstByteSpan input, ByteSpan output) const override {
    const int rc = js::zlib_decode(input.data(), static_cast<double>(input.size()), output.data(),
                                   static_cast<double>(output.size()));
    return decode_status(rc, "zlib", input.size(), output.size());
  }

  Result<std::vector<uint8_t>> compress(ConstByteSpan input, size_t max_size) const override {
    std::vector<uint8_t> out(max_size);
    const double n = js::zlib_encode(input.data(), static_cast<double>(input.size()), out.data(),
                                     static_cast<double>(out.size()));
    if (n < 0) return make_error(static_cast<int>(-n), "zlib encode failed: " + js::last_js_error());
    if (n == 0) return std::vector<uint8_t>{};
    out.resize(static_cast<size_t>(n));
    return out;
  }
};

}  // namespace

const CodecSet& js_codecs() {
  static const JsDeflateCodec deflate;
  static const JsZstdCodec zstd;
  static const JsZlibStreamCodec zlib_stream;
  static const CodecSet set{&deflate, &zstd, &zlib_stream};
  return set;
}

}  // namespace qcowkit::wasm

namespace qcowkit {

// The core's formats that fetch their codec themselves (vmdk's compressed
// grains, qcow version 1) ask builtin_codecs(). In the WebAssembly build the
// core's own definition (codecs/builtin_codecs_none.cpp, an empty set) sits
// in the static library libqcowkit.a, and an archive member is linked only
// to define a symbol nothing else defines: this definition, in an object the
// module links directly, is the one every format then uses.
const CodecSet& builtin_codecs() { return wasm::js_codecs(); }

}  // namespace qcowkit
