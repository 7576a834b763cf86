// Shared plumbing of the block operations: option checks, chunk geometry,
// error messages that carry offsets, per-slot buffers and progress.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "qcowkit/block_ops.hpp"

namespace qcowkit::ops {

#ifdef QCOWKIT_HAVE_THREADS
constexpr unsigned kDefaultParallelism = 4;
#else
constexpr unsigned kDefaultParallelism = 1;
#endif
constexpr unsigned kMaxParallelism = 64;
// One request never needs more than this; larger asks are mistakes.
constexpr uint64_t kMaxChunkSize = uint64_t{1} << 30;

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

// The smallest size both devices can address: lcm of their sector sizes.
uint64_t common_alignment(const DeviceInfo& a, const DeviceInfo& b);

// chunk_size must be in (0, kMaxChunkSize]; it is rounded up to `alignment`.
Result<uint64_t> chunk_size_for(uint64_t requested, uint64_t alignment, const char* operation);

// 0 means kDefaultParallelism; more than kMaxParallelism is refused.
Result<unsigned> parallelism_for(unsigned requested, const char* operation);

// copy/sparse_copy preconditions, checked before anything is written.
Status check_copy_devices(const DeviceInfo& src, const DeviceInfo& dst, const char* operation);

// "copy: read failed at offset 1048576: <cause>", keeping the cause's code.
Error failed_at(const char* operation, const char* what, uint64_t offset, const Error& cause);

// Makes `buffer` hold at least `size` bytes; ENOMEM instead of an exception.
Status ensure_buffer(std::vector<uint8_t>& buffer, size_t size, const char* operation);

// Reports progress from any thread, one call at a time. finish() makes the
// last call (total, total), so a successful operation always ends there.
class ProgressMeter {
 public:
  ProgressMeter(const ProgressFn& fn, uint64_t total) : fn_(fn), total_(total) {}
  void add(uint64_t bytes);
  void finish();

 private:
  const ProgressFn& fn_;
  const uint64_t total_;
  std::mutex mutex_;
  uint64_t done_ = 0;
  bool reported_total_ = false;
};

}  // namespace qcowkit::ops
