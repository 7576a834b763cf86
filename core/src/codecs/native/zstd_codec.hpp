// ZstdCodec: qcow2's "zstd" compression type, on the system libzstd.
// Compressed clusters may hold several frames; decoding streams them into
// the output and stops when it is full.
#pragma once

#include "qcowkit/codec.hpp"

namespace qcowkit::codecs {

class ZstdCodec final : public Codec {
 public:
  Status decompress(ConstByteSpan input, ByteSpan output) const override;
  Result<std::vector<uint8_t>> compress(ConstByteSpan input, size_t max_size) const override;
};

}  // namespace qcowkit::codecs
