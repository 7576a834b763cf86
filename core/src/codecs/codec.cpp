// Parts of codec.hpp that every build has, native or WebAssembly.
#include "qcowkit/codec.hpp"

namespace qcowkit {

const char* to_string(CompressionType type) {
  switch (type) {
    case CompressionType::deflate: return "zlib";  // qemu-img's name for raw deflate
    case CompressionType::zstd: return "zstd";
  }
  return "unknown";
}

}  // namespace qcowkit
