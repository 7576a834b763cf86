#include "ops/copy_job.hpp"

#include <algorithm>

namespace qcowkit::ops {
namespace {

// Like qemu-img convert's default: zero runs shorter than 4 KiB stay data,
// so a mostly-data chunk is not split into many tiny requests.
constexpr uint64_t kZeroGranule = 4096;
// Keeps one write_zeroes request within what NBD-like transports accept.
constexpr uint64_t kMaxZeroRequest = uint64_t{1} << 30;

}  // namespace

Result<std::unique_ptr<CopyJob>> CopyJob::start(BlockDevice& src, BlockDevice& dst,
                                                const CopyOptions& options,
                                                const char* operation) {
  const DeviceInfo si = src.info(), di = dst.info();
  QK_TRY(check_copy_devices(si, di, operation));
  const uint64_t alignment = common_alignment(si, di);
  QK_ASSIGN_OR_RETURN(const uint64_t chunk,
                      chunk_size_for(options.chunk_size, alignment, operation));
  QK_ASSIGN_OR_RETURN(const unsigned parallelism, parallelism_for(options.parallelism, operation));
  return std::unique_ptr<CopyJob>(
      new CopyJob(src, dst, options, operation, chunk, alignment, parallelism));
}

CopyJob::CopyJob(BlockDevice& src, BlockDevice& dst, const CopyOptions& options,
                 const char* operation, uint64_t chunk, uint64_t alignment, unsigned parallelism)
    : src_(src),
      dst_(dst),
      options_(options),
      operation_(operation),
      size_(src.info().size),
      chunk_(chunk),
      alignment_(alignment),
      zero_granule_((std::max(kZeroGranule, alignment) + alignment - 1) / alignment * alignment),
      progress_(options.progress, size_),
      pool_(parallelism),
      buffers_(pool_.slots()) {}

bool CopyJob::submit_data(uint64_t offset, uint64_t length, bool sparse) {
  return pool_.submit([this, offset, length, sparse](unsigned slot) {
    return copy_chunk(offset, static_cast<size_t>(length), sparse, slot);
  });
}

bool CopyJob::submit_zeroes(uint64_t offset, uint64_t length) {
  const uint64_t max_request = align_down(kMaxZeroRequest, alignment_);
  for (uint64_t end = offset + length; offset < end;) {
    const uint64_t n = std::min(end - offset, max_request);
    if (options_.destination_is_zero) {
      progress_.add(n);
    } else if (!pool_.submit([this, offset, n](unsigned) -> Status {
                 QK_TRY(zero_range(offset, n));
                 progress_.add(n);
                 return Status{};
               })) {
      return false;
    }
    offset += n;
  }
  return true;
}

Status CopyJob::zero_range(uint64_t offset, uint64_t length) {
  if (options_.destination_is_zero) return {};
  if (auto st = dst_.write_zeroes(offset, length, ZeroFlags{.may_trim = true}); !st.ok())
    return failed_at(operation_, "write_zeroes", offset, st.error());
  return {};
}

Status CopyJob::write_run(uint64_t offset, ConstByteSpan data, bool zero) {
  if (zero) return zero_range(offset, data.size());
  if (auto st = dst_.write(offset, data); !st.ok())
    return failed_at(operation_, "write", offset, st.error());
  return {};
}

Status CopyJob::copy_chunk(uint64_t offset, size_t length, bool sparse, unsigned slot) {
  std::vector<uint8_t>& buffer = buffers_[slot];
  QK_TRY(ensure_buffer(buffer, static_cast<size_t>(std::min(chunk_, size_)), operation_));
  ByteSpan data(buffer.data(), length);
  if (auto st = src_.read(offset, data); !st.ok())
    return failed_at(operation_, "read", offset, st.error());
  if (!sparse) {
    QK_TRY(write_run(offset, data, false));
  } else {
    // Split into alternating runs of data and all-zero granules.
    size_t run_start = 0;
    bool run_zero = false;
    for (size_t pos = 0; pos < length;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(zero_granule_, length - pos));
      // A short tail granule may be misaligned for a trim; keep it as data.
      const bool zero = n % alignment_ == 0 && is_all_zero(data.subspan(pos, n));
      if (pos != 0 && zero != run_zero) {
        QK_TRY(write_run(offset + run_start, data.subspan(run_start, pos - run_start), run_zero));
        run_start = pos;
      }
      run_zero = zero;
      pos += n;
    }
    QK_TRY(write_run(offset + run_start, data.subspan(run_start, length - run_start), run_zero));
  }
  progress_.add(length);
  return {};
}

Status CopyJob::finish(Status producer_status) {
  QK_TRY(pool_.finish());
  QK_TRY(producer_status);
  if (auto st = dst_.flush(); !st.ok())
    return make_error(st.error().code, std::string(operation_) +
                                           ": flush of the destination failed: " +
                                           st.error().message);
  progress_.finish();
  return {};
}

}  // namespace qcowkit::ops
