// compare: reads both devices side by side, skipping ranges both report as
// zero or hole, and finds the first byte that differs.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "ops/op_support.hpp"
#include "ops/request_pool.hpp"
#include "ops/segment_walker.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {
namespace {

constexpr const char* kOp = "compare";

// Offset of the first differing byte of two equal-length buffers, if any.
std::optional<size_t> first_mismatch(const uint8_t* a, const uint8_t* b, size_t n) {
  if (std::memcmp(a, b, n) == 0) return std::nullopt;
  constexpr size_t kStep = 4096;  // narrow down with memcmp, then bytewise
  size_t pos = 0;
  while (pos + kStep < n && std::memcmp(a + pos, b + pos, kStep) == 0) pos += kStep;
  while (a[pos] == b[pos]) ++pos;
  return pos;
}

// What the requests found: the lowest differing offset, and the failure at
// the lowest offset. Whichever comes first in the device is the answer.
class Findings {
 public:
  void difference_at(uint64_t offset) {
    std::lock_guard lock(mutex_);
    if (!difference_ || offset < *difference_) difference_ = offset;
    found_.store(true, std::memory_order_release);
  }
  Status error_at(uint64_t offset, Error error) {
    std::lock_guard lock(mutex_);
    if (!error_ || offset < error_offset_) {
      error_offset_ = offset;
      error_ = error;
    }
    return error;
  }
  bool found() const { return found_.load(std::memory_order_acquire); }
  // The difference, unless an error came before it (then we cannot know).
  Result<std::optional<uint64_t>> answer() const {
    std::lock_guard lock(mutex_);
    if (error_ && (!difference_ || error_offset_ < *difference_)) return *error_;
    return difference_;
  }

 private:
  mutable std::mutex mutex_;
  std::optional<uint64_t> difference_;
  std::optional<Error> error_;
  uint64_t error_offset_ = 0;
  std::atomic<bool> found_{false};
};

}  // namespace

Result<CompareResult> compare(BlockDevice& a, BlockDevice& b, const OpOptions& options) {
  const DeviceInfo ia = a.info(), ib = b.info();
  CompareResult result;
  result.a_size = ia.size;
  result.b_size = ib.size;
  if (ia.size != ib.size) {
    result.sizes_differ = true;
    return result;
  }
  const uint64_t alignment = ops::common_alignment(ia, ib);
  QK_ASSIGN_OR_RETURN(const uint64_t chunk,
                      ops::chunk_size_for(options.chunk_size, alignment, kOp));
  QK_ASSIGN_OR_RETURN(const unsigned parallelism, ops::parallelism_for(options.parallelism, kOp));
  const size_t buffer_size = static_cast<size_t>(std::min(chunk, ia.size));

  ops::ProgressMeter progress(options.progress, ia.size);
  Findings findings;
  ops::RequestPool pool(parallelism);
  // Two buffers per slot: memory is bounded by 2 x parallelism x chunk.
  std::vector<std::vector<uint8_t>> a_buffers(pool.slots()), b_buffers(pool.slots());

  auto compare_chunk = [&](uint64_t offset, size_t length, unsigned slot) -> Status {
    for (auto* buffer : {&a_buffers[slot], &b_buffers[slot]})
      if (auto st = ops::ensure_buffer(*buffer, buffer_size, kOp); !st.ok())
        return findings.error_at(offset, std::move(st).error());
    ByteSpan da(a_buffers[slot].data(), length), db(b_buffers[slot].data(), length);
    if (auto st = a.read(offset, da); !st.ok())
      return findings.error_at(
          offset, ops::failed_at(kOp, "read of the first device", offset, st.error()));
    if (auto st = b.read(offset, db); !st.ok())
      return findings.error_at(
          offset, ops::failed_at(kOp, "read of the second device", offset, st.error()));
    if (auto at = first_mismatch(da.data(), db.data(), length))
      findings.difference_at(offset + *at);
    progress.add(length);
    return {};
  };

  ops::SegmentWalker walker(a, &b, ia.size, alignment, kOp);
  Status walk_status;
  bool stopped = false;
  while (!stopped && !findings.found()) {
    auto next = walker.next();
    if (!next.ok()) {
      walk_status = std::move(next).error();
      break;
    }
    if (!next->has_value()) break;
    const ops::Segment segment = **next;
    if (!segment.mapped) {
      progress.add(segment.length);
      continue;
    }
    // Requests follow the chunk grid, so they line up with fold's chunks.
    const uint64_t end = segment.offset + segment.length;
    for (uint64_t pos = segment.offset; pos < end && !findings.found();) {
      const uint64_t piece_end = std::min(end, (pos / chunk + 1) * chunk);
      const size_t length = static_cast<size_t>(piece_end - pos);
      auto request = [=, &compare_chunk](unsigned slot) {
        return compare_chunk(pos, length, slot);
      };
      if (!pool.submit(request)) {
        stopped = true;
        break;
      }
      pos = piece_end;
    }
  }
  // Requests record their own failures with offsets; the pool's copy of the
  // first one adds nothing. The walker only fails past every request made.
  (void)pool.finish();
  QK_ASSIGN_OR_RETURN(const std::optional<uint64_t> first, findings.answer());
  if (!first) QK_TRY(walk_status);
  progress.finish();  // equal, or a first difference: either way the work is done
  if (first) {
    result.first_difference = first;
    return result;
  }
  result.equal = true;
  return result;
}

}  // namespace qcowkit
