// fold, fold_mapped, fold_unmapped: visit a device's contents (or its
// unmapped ranges) in order. The callback is usually stateful, so these run
// sequentially, one chunk buffer at a time.
#include <algorithm>

#include "ops/op_support.hpp"
#include "ops/segment_walker.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {
namespace {

// Reads [offset, end) in pieces along the chunk grid and hands each to fn.
Status fold_range(BlockDevice& device, uint64_t offset, uint64_t end, uint64_t chunk,
                  std::vector<uint8_t>& buffer, const FoldFn& fn, const char* operation) {
  while (offset < end) {
    const uint64_t piece_end = std::min(end, (offset / chunk + 1) * chunk);
    ByteSpan data(buffer.data(), static_cast<size_t>(piece_end - offset));
    if (auto st = device.read(offset, data); !st.ok())
      return ops::failed_at(operation, "read", offset, st.error());
    QK_TRY(fn(offset, data));
    offset = piece_end;
  }
  return {};
}

}  // namespace

Status fold(BlockDevice& device, uint64_t chunk_size, const FoldFn& fn) {
  constexpr const char* kOp = "fold";
  const DeviceInfo info = device.info();
  QK_ASSIGN_OR_RETURN(const uint64_t chunk,
                      ops::chunk_size_for(chunk_size, ops::common_alignment(info, info), kOp));
  std::vector<uint8_t> buffer;
  QK_TRY(ops::ensure_buffer(buffer, static_cast<size_t>(std::min(chunk, info.size)), kOp));
  return fold_range(device, 0, info.size, chunk, buffer, fn, kOp);
}

Status fold_mapped(BlockDevice& device, uint64_t chunk_size, const FoldFn& fn) {
  constexpr const char* kOp = "fold_mapped";
  const DeviceInfo info = device.info();
  const uint64_t alignment = ops::common_alignment(info, info);
  QK_ASSIGN_OR_RETURN(const uint64_t chunk, ops::chunk_size_for(chunk_size, alignment, kOp));
  std::vector<uint8_t> buffer;
  ops::SegmentWalker walker(device, nullptr, info.size, alignment, kOp);
  for (;;) {
    QK_ASSIGN_OR_RETURN(const std::optional<ops::Segment> segment, walker.next());
    if (!segment) return {};
    if (!segment->mapped) continue;
    // Allocated only once there is data: folding an empty device costs nothing.
    QK_TRY(ops::ensure_buffer(buffer, static_cast<size_t>(std::min(chunk, info.size)), kOp));
    QK_TRY(fold_range(device, segment->offset, segment->offset + segment->length, chunk, buffer,
                      fn, kOp));
  }
}

Status fold_unmapped(BlockDevice& device, const RangeFn& fn) {
  constexpr const char* kOp = "fold_unmapped";
  const DeviceInfo info = device.info();
  ops::SegmentWalker walker(device, nullptr, info.size, ops::common_alignment(info, info), kOp);
  for (;;) {
    QK_ASSIGN_OR_RETURN(const std::optional<ops::Segment> segment, walker.next());
    if (!segment) return {};
    // The walker merges zero and hole extents, so each range is maximal.
    if (!segment->mapped) QK_TRY(fn(segment->offset, segment->length));
  }
}

}  // namespace qcowkit
