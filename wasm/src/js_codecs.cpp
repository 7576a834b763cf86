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

// One codec of wasm/js/codecs.js: `decode` fills exactly the output;
// `encode` (nullptr: not offered) returns the packed length, 0 when it does
// not fit, or minus an errno.
class JsCodec final : public Codec {
 public:
  using DecodeFn = int (*)(const uint8_t*, double, uint8_t*, double);
  using EncodeFn = double (*)(const uint8_t*, double, uint8_t*, double);
  JsCodec(const char* name, DecodeFn decode, EncodeFn encode)
      : name_(name), decode_(decode), encode_(encode) {}

  Status decompress(ConstByteSpan input, ByteSpan output) const override {
    const int rc = decode_(input.data(), static_cast<double>(input.size()), output.data(),
                           static_cast<double>(output.size()));
    return decode_status(rc, name_, input.size(), output.size());
  }

  Result<std::vector<uint8_t>> compress(ConstByteSpan input, size_t max_size) const override {
    if (!encode_)
      return make_error(ENOTSUP, std::string(name_) + " compression is not available in the "
                                 "WebAssembly build (it writes deflate)");
    std::vector<uint8_t> out(max_size);
    const double n = encode_(input.data(), static_cast<double>(input.size()), out.data(),
                             static_cast<double>(out.size()));
    if (n < 0)
      return make_error(static_cast<int>(-n), std::string(name_) + " encode failed: " + js::last_js_error());
    // n == max_size would not save anything: store the data plainly.
    if (n == 0 || n >= static_cast<double>(max_size)) return std::vector<uint8_t>{};
    out.resize(static_cast<size_t>(n));
    return out;
  }

 private:
  const char* name_;
  DecodeFn decode_;
  EncodeFn encode_;
};

}  // namespace

const CodecSet& js_codecs() {
  static const JsCodec deflate("deflate", js::inflate_raw, js::deflate_raw);
  static const JsCodec zstd("zstd", js::zstd_decode, nullptr);
  static const JsCodec zlib_stream("zlib", js::zlib_decode, js::zlib_encode);
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
