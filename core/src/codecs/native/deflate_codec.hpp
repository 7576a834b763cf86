// DeflateCodec: qcow2's "zlib" compression type, on the system zlib.
// qcow2 stores raw deflate (no zlib header or checksum) with a 4 KiB window:
// QEMU both compresses and decompresses with windowBits -12, and so do we.
// VMDK's compressed grains are zlib streams (RFC 1950: header, 32 KiB
// window, checksum): the same codec with windowBits 15.
#pragma once

#include "qcowkit/codec.hpp"

namespace qcowkit::codecs {

class DeflateCodec final : public Codec {
 public:
  static constexpr int kRawDeflate = -12, kZlibStream = 15;
  explicit DeflateCodec(int window_bits = kRawDeflate) : window_bits_(window_bits) {}
  Status decompress(ConstByteSpan input, ByteSpan output) const override;
  Result<std::vector<uint8_t>> compress(ConstByteSpan input, size_t max_size) const override;

 private:
  int window_bits_;
};

}  // namespace qcowkit::codecs
