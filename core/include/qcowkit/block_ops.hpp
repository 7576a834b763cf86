// Block operations over any BlockDevice (the seeds' mirage-block):
// compare, fold, fold_mapped, fold_unmapped, copy, sparse_copy, fill_random.
//
// Errors: devices of different sizes fail with ERANGE and a message giving
// both sizes; a read-only destination fails with EROFS before anything is
// written; an I/O error is returned with the failing offset in its message
// ("read failed at offset 1048576: ...").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

// Called with (bytes done, bytes total); may be called from worker threads,
// but never concurrently with itself.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

struct CompareResult {
  bool equal = false;
  bool sizes_differ = false;                  // then the sizes are in a/b_size
  std::optional<uint64_t> first_difference;  // byte offset, when contents differ
  uint64_t a_size = 0, b_size = 0;
};

struct OpOptions {
  uint64_t chunk_size = 1u << 20;  // bytes per request (rounded to sector sizes)
  unsigned parallelism = 0;        // requests in flight; 0 = a sensible default
  ProgressFn progress;             // optional
};

// Compares contents. Ranges both devices report as zero or hole are not read.
Result<CompareResult> compare(BlockDevice& a, BlockDevice& b, const OpOptions& options = {});

// Calls fn(offset, data) on sequential chunks of `chunk_size` (the last may be
// shorter) covering the whole device.
using FoldFn = std::function<Status(uint64_t offset, ConstByteSpan data)>;
Status fold(BlockDevice& device, uint64_t chunk_size, const FoldFn& fn);

// As fold, but skips ranges the device's extents call hole or zero.
Status fold_mapped(BlockDevice& device, uint64_t chunk_size, const FoldFn& fn);

// Calls fn(offset, length) for each maximal range that reads as zeroes without
// being data (extents zero or hole); never with length 0.
using RangeFn = std::function<Status(uint64_t offset, uint64_t length)>;
Status fold_unmapped(BlockDevice& device, const RangeFn& fn);

struct CopyOptions : OpOptions {
  // sparse_copy: the destination is known to read as zeroes already, so
  // holes need no write at all.
  bool destination_is_zero = false;
  // sparse_copy: also turn data chunks that are all zeroes into holes.
  bool detect_zeroes = true;
};

// Copies every byte of src to dst (same size required).
Status copy(BlockDevice& src, BlockDevice& dst, const CopyOptions& options = {});

// Copies only what src maps as data; ranges that are holes or zero in src
// become write_zeroes(may_trim) on dst (skipped if destination_is_zero), so
// holes stay holes on a destination that supports them.
Status sparse_copy(BlockDevice& src, BlockDevice& dst, const CopyOptions& options = {});

// Fills the whole device with pseudo-random bytes from `seed` (the same seed
// always gives the same bytes, on every platform).
Status fill_random(BlockDevice& device, uint64_t seed, const OpOptions& options = {});

}  // namespace qcowkit
