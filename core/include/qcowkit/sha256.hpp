// SHA-256 (FIPS 180-4), self-contained: used by `qcowkit sha256` to hash an
// image's virtual contents, and available to any adapter that needs a digest.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;

  Sha256();
  // Feeds more message bytes; may be called any number of times.
  void update(ConstByteSpan data);
  // Pads, returns the digest, and resets to a fresh state.
  Digest finish();

  // Lower-case hexadecimal, as sha256sum prints it.
  static std::string to_hex(const Digest& digest);

 private:
  void compress_block(const uint8_t* block);
  void reset();

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> pending_;
  size_t pending_size_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace qcowkit
