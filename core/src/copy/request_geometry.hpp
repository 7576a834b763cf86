// What every copy-engine piece needs about requests: alignment arithmetic,
// error messages that carry the failing offset, and serialised progress.
#pragma once

#include <cstdint>
#include <mutex>

#include "qcowkit/block_ops.hpp"

namespace qcowkit::engine {

inline uint64_t align_down(uint64_t value, uint64_t alignment) {
  return value - value % alignment;
}
// Rounds up, but never past `limit` (the device end, itself aligned).
inline uint64_t align_up(uint64_t value, uint64_t alignment, uint64_t limit) {
  const uint64_t rest = value % alignment;
  if (rest == 0) return value;
  const uint64_t room = limit - value;
  return room <= alignment - rest ? limit : value + (alignment - rest);
}

// "copy: read failed at offset 1048576: <cause>", keeping the cause's code.
Error failed_at(const char* operation, const char* what, uint64_t offset, const Error& cause);

// Reports progress from any thread, one call at a time, never going
// backwards. finish() makes the last call (total, total), so a successful
// operation always ends there. Thread-safe; holds a copy of the callback.
class ProgressMeter {
 public:
  ProgressMeter(ProgressFn fn, uint64_t total) : fn_(std::move(fn)), total_(total) {}
  void add(uint64_t bytes);
  void finish();
  uint64_t done() const {
    std::lock_guard lock(mutex_);
    return done_;
  }

 private:
  const ProgressFn fn_;
  const uint64_t total_;
  mutable std::mutex mutex_;
  uint64_t done_ = 0;
  bool reported_total_ = false;
};

}  // namespace qcowkit::engine
