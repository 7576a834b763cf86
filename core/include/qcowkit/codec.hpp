// Codecs for compressed qcow2 clusters. The engine never calls zlib or zstd
// directly: it goes through a CodecSet, so the browser build can plug in
// codecs of its own (see wasm/) and native builds use the system libraries.
#pragma once

#include <cstdint>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

enum class CompressionType : uint8_t { deflate = 0, zstd = 1 };

const char* to_string(CompressionType type);  // "zlib" / "zstd", as qemu-img names them

class Codec {
 public:
  virtual ~Codec() = default;

  // Decodes `input` into exactly output.size() bytes. `input` may carry
  // trailing bytes past the end of the stream (sector padding). A stream that
  // ends early, is corrupt, or would produce more than output.size() bytes
  // fails with EIO; memory use is bounded by output.size(), whatever the input.
  virtual Status decompress(ConstByteSpan input, ByteSpan output) const = 0;

  // Encodes `input`. Returns an empty vector when the result would not be
  // smaller than `max_size` bytes (the caller then stores the data plainly).
  // Deflate output is raw deflate (no zlib header), as qcow2 stores it.
  virtual Result<std::vector<uint8_t>> compress(ConstByteSpan input, size_t max_size) const = 0;
};

struct CodecSet {
  const Codec* deflate = nullptr;
  const Codec* zstd = nullptr;
  // zlib streams (RFC 1950, 32 KiB window), as VMDK stores compressed grains.
  const Codec* zlib_stream = nullptr;

  const Codec* get(CompressionType type) const {
    return type == CompressionType::zstd ? zstd : deflate;
  }
};

// The codecs this build links in natively (zlib and libzstd); an empty set in
// the WebAssembly build, where wasm/ supplies its own.
const CodecSet& builtin_codecs();

}  // namespace qcowkit
