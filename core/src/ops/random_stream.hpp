// A seekable stream of pseudo-random bytes: word i of the stream for `seed`
// is the (i + 1)-th output of splitmix64 started from `seed`, stored little
// endian. Each word depends only on (seed, i), so any range can be produced
// on its own, by any thread, and the bytes are the same on every platform.
#pragma once

#include <cstdint>
#include <span>

namespace qcowkit::ops {

inline uint64_t splitmix64_at(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;  // wraps, as intended
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fills `out` with the stream's bytes at [offset, offset + out.size()).
inline void random_bytes(uint64_t seed, uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t pos = offset + done;
    const uint64_t word = splitmix64_at(seed, pos / 8);
    // Bytes of a word, lowest first, whatever the host's byte order.
    for (unsigned byte = pos % 8; byte < 8 && done < out.size(); ++byte, ++done)
      out[done] = static_cast<uint8_t>(word >> (8 * byte));
  }
}

}  // namespace qcowkit::ops
