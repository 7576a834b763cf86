// sparse_copy: copies only what the source maps as data. Holes and zero
// ranges become write_zeroes(may_trim) on the destination (or nothing at all
// when it is known to be zero), so a sparse image stays sparse.
#include <algorithm>

#include "ops/copy_job.hpp"
#include "ops/segment_walker.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {

Status sparse_copy(BlockDevice& src, BlockDevice& dst, const CopyOptions& options) {
  constexpr const char* kOp = "sparse_copy";
  QK_ASSIGN_OR_RETURN(auto job, ops::CopyJob::start(src, dst, options, kOp));
  ops::SegmentWalker walker(src, nullptr, job->size(), job->alignment(), kOp);
  Status walk_status;
  for (bool more = true; more;) {
    auto next = walker.next();
    if (!next.ok()) {
      walk_status = std::move(next).error();
      break;
    }
    if (!next->has_value()) break;
    const ops::Segment segment = **next;
    if (!segment.mapped) {
      more = job->submit_zeroes(segment.offset, segment.length);
      continue;
    }
    const uint64_t end = segment.offset + segment.length;
    for (uint64_t pos = segment.offset; more && pos < end;) {
      const uint64_t piece_end = std::min(end, (pos / job->chunk() + 1) * job->chunk());
      more = job->submit_data(pos, piece_end - pos, options.detect_zeroes);
      pos = piece_end;
    }
  }
  return job->finish(std::move(walk_status));
}

}  // namespace qcowkit
