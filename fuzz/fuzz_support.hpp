// Helpers shared by the fuzz harnesses. The same harness sources build three
// ways: libFuzzer binaries (clang, ASan + UBSan), a replay driver for CTest
// (g++), and the replay driver under Emscripten/node; nothing here may depend
// on which.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>
#include <string_view>

#include "qcowkit/result.hpp"

namespace qcowkit::fuzz {

// A harness found a real bug (wrong data, corruption, an unexpected error):
// say what, and abort so libFuzzer (or the replay driver's test) reports it.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void require(bool condition, const std::string& what) {
  if (!condition) fail(what);
}

template <class T>
void require_ok(const Result<T>& result, const std::string& what) {
  if (!result.ok()) fail(what + ": " + result.error().message);
}

// Consumes the input front to back; past its end every read yields zero, so
// every input (even an empty one) decodes to some well-defined program.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return pos_ < size_ ? size_ - pos_ : 0; }

  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }
  uint64_t u64() { return u32() | (static_cast<uint64_t>(u32()) << 32); }
  // A value in [0, bound) (bound > 0), from as few bytes as it needs.
  uint64_t below(uint64_t bound) {
    if (bound <= 0x100) return u8() % bound;
    if (bound <= 0x10000) return u16() % bound;
    if (bound <= 0x100000000ull) return u32() % bound;
    return u64() % bound;
  }
  // Up to `max` of the remaining bytes, as they are.
  std::basic_string_view<uint8_t> bytes(size_t max) {
    const size_t n = std::min(max, remaining());
    std::basic_string_view<uint8_t> out(data_ + pos_, n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace qcowkit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
