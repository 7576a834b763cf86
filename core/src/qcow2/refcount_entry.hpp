// Reading and writing one entry of a refcount block, for every width qcow2
// allows (1 to 64 bits). Narrow entries pack several to a byte with entry 0
// in the least significant bits; wide ones are big-endian.
#pragma once

#include <cstdint>

#include "util/endian.hpp"

namespace qcowkit::qcow2 {

inline uint64_t get_refcount_entry(const uint8_t* block, uint64_t index, unsigned bits) {
  switch (bits) {
    case 64: return load_be64(block + index * 8);
    case 32: return load_be32(block + index * 4);
    case 16: return load_be16(block + index * 2);
    case 8: return block[index];
    default: {
      const uint64_t bit = index * bits;
      return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
  }
}

inline void set_refcount_entry(uint8_t* block, uint64_t index, unsigned bits, uint64_t value) {
  switch (bits) {
    case 64: store_be64(block + index * 8, value); return;
    case 32: store_be32(block + index * 4, static_cast<uint32_t>(value)); return;
    case 16: store_be16(block + index * 2, static_cast<uint16_t>(value)); return;
    case 8: block[index] = static_cast<uint8_t>(value); return;
    default: {
      const uint64_t bit = index * bits;
      const uint8_t mask = static_cast<uint8_t>(((1u << bits) - 1) << (bit % 8));
      block[bit / 8] = static_cast<uint8_t>((block[bit / 8] & ~mask) |
                                            ((value << (bit % 8)) & mask));
    }
  }
}

inline uint64_t max_refcount(unsigned bits) {
  return bits == 64 ? UINT64_MAX : (uint64_t{1} << bits) - 1;
}

}  // namespace qcowkit::qcow2
