// CopyJob: what copy and sparse_copy share. Checks the devices, sizes the
// requests, and moves one chunk at a time from source to destination on the
// request pool, with per-slot buffers and progress.
#pragma once

#include <memory>
#include <vector>

#include "ops/op_support.hpp"
#include "ops/request_pool.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit::ops {

class CopyJob {
 public:
  // Fails (ERANGE, EROFS, EINVAL) before anything is written.
  static Result<std::unique_ptr<CopyJob>> start(BlockDevice& src, BlockDevice& dst,
                                                const CopyOptions& options, const char* operation);

  uint64_t size() const { return size_; }
  uint64_t chunk() const { return chunk_; }
  uint64_t alignment() const { return alignment_; }

  // Queues the copy of [offset, offset + length), which lies inside one chunk
  // of the chunk grid. With `sparse`, runs of zero bytes become write_zeroes
  // (or nothing, when the destination is known to be zero). False: stop.
  bool submit_data(uint64_t offset, uint64_t length, bool sparse);
  // Queues zeroing [offset, offset + length) of the destination (may trim).
  bool submit_zeroes(uint64_t offset, uint64_t length);
  // Counts bytes that needed no request at all.
  void skipped(uint64_t length) { progress_.add(length); }

  // Waits for every request, then flushes the destination.
  Status finish(Status producer_status);

 private:
  CopyJob(BlockDevice& src, BlockDevice& dst, const CopyOptions& options, const char* operation,
          uint64_t chunk, uint64_t alignment, unsigned parallelism);
  Status copy_chunk(uint64_t offset, size_t length, bool sparse, unsigned slot);
  Status write_run(uint64_t offset, ConstByteSpan data, bool zero);
  Status zero_range(uint64_t offset, uint64_t length);

  BlockDevice& src_;
  BlockDevice& dst_;
  const CopyOptions& options_;
  const char* operation_;
  uint64_t size_;
  uint64_t chunk_;
  uint64_t alignment_;
  uint64_t zero_granule_;  // smallest run of zero bytes worth a write_zeroes
  ProgressMeter progress_;
  RequestPool pool_;
  std::vector<std::vector<uint8_t>> buffers_;  // one per pool slot
};

}  // namespace qcowkit::ops
