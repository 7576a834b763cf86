// Shared plumbing of the block operations: option checks, chunk geometry,
// error messages that carry offsets, per-slot buffers and progress.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "copy/request_geometry.hpp"
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

using engine::align_down;
using engine::align_up;
using engine::failed_at;
using engine::ProgressMeter;

// The smallest size both devices can address: lcm of their sector sizes.
uint64_t common_alignment(const DeviceInfo& a, const DeviceInfo& b);

// chunk_size must be in (0, kMaxChunkSize]; it is rounded up to `alignment`.
Result<uint64_t> chunk_size_for(uint64_t requested, uint64_t alignment, const char* operation);

// 0 means kDefaultParallelism; more than kMaxParallelism is refused.
Result<unsigned> parallelism_for(unsigned requested, const char* operation);

// copy/sparse_copy preconditions, checked before anything is written.
Status check_copy_devices(const DeviceInfo& src, const DeviceInfo& dst, const char* operation);

// Makes `buffer` hold at least `size` bytes; ENOMEM instead of an exception.
Status ensure_buffer(std::vector<uint8_t>& buffer, size_t size, const char* operation);

}  // namespace qcowkit::ops
