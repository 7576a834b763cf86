// Native builds link zlib and libzstd (see core/CMakeLists.txt).
#include "codecs/native/deflate_codec.hpp"
#include "codecs/native/zstd_codec.hpp"

namespace qcowkit {

const CodecSet& builtin_codecs() {
  static const codecs::DeflateCodec deflate;
  static const codecs::ZstdCodec zstd;
  static const codecs::DeflateCodec zlib(codecs::DeflateCodec::kZlibStream);
  static const CodecSet set{&deflate, &zstd, &zlib};
  return set;
}

}  // namespace qcowkit
