// DeflateCodec: qcow2's "zlib" compression type, on the system zlib.
// qcow2 stores raw deflate (no zlib header or checksum) with a 4 KiB window:
// QEMU both compresses and decompresses with windowBits -12, and so do we.
#pragma once

#include "qcowkit/codec.hpp"

namespace qcowkit::codecs {

class DeflateCodec final : public Codec {
 public:
  Status decompress(ConstByteSpan input, ByteSpan output) const override;
  Result<std::vector<uint8_t>> compress(ConstByteSpan input, size_t max_size) const override;
};

}  // namespace qcowkit::codecs
