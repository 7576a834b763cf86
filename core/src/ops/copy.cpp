// copy: every byte of the source to the destination, chunk by chunk, with
// several requests in flight.
#include <algorithm>

#include "ops/copy_job.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {

Status copy(BlockDevice& src, BlockDevice& dst, const CopyOptions& options) {
  QK_ASSIGN_OR_RETURN(auto job, ops::CopyJob::start(src, dst, options, "copy"));
  for (uint64_t pos = 0; pos < job->size();) {
    const uint64_t n = std::min(job->chunk(), job->size() - pos);
    if (!job->submit_data(pos, n, /*sparse=*/false)) break;
    pos += n;
  }
  return job->finish({});
}

}  // namespace qcowkit
