#include "ops/op_support.hpp"

#include <new>
#include <numeric>

namespace qcowkit::ops {

uint64_t common_alignment(const DeviceInfo& a, const DeviceInfo& b) {
  const uint64_t sa = a.sector_size ? a.sector_size : 1;
  const uint64_t sb = b.sector_size ? b.sector_size : 1;
  return std::lcm(sa, sb);  // both below 2^32, so the product fits
}

Result<uint64_t> chunk_size_for(uint64_t requested, uint64_t alignment, const char* operation) {
  if (requested == 0 || requested > kMaxChunkSize)
    return make_error(EINVAL, std::string(operation) + ": chunk size " +
                                  std::to_string(requested) + " is not in 1.." +
                                  std::to_string(kMaxChunkSize));
  if (alignment > kMaxChunkSize)
    return make_error(EINVAL, std::string(operation) + ": sector sizes need " +
                                  std::to_string(alignment) + "-byte requests, more than " +
                                  std::to_string(kMaxChunkSize));
  return (requested + alignment - 1) / alignment * alignment;  // both <= 2^30
}

Result<unsigned> parallelism_for(unsigned requested, const char* operation) {
  if (requested == 0) return kDefaultParallelism;
  if (requested > kMaxParallelism)
    return make_error(EINVAL, std::string(operation) + ": parallelism " +
                                  std::to_string(requested) + " is more than " +
                                  std::to_string(kMaxParallelism));
#ifdef QCOWKIT_HAVE_THREADS
  return requested;
#else
  return 1u;
#endif
}

Status check_copy_devices(const DeviceInfo& src, const DeviceInfo& dst, const char* operation) {
  if (src.size != dst.size)
    return make_error(ERANGE, std::string(operation) + ": source is " + std::to_string(src.size) +
                                  " bytes but destination is " + std::to_string(dst.size) +
                                  " bytes");
  if (dst.read_only)
    return make_error(EROFS, std::string(operation) + ": destination is read-only");
  return {};
}

Status ensure_buffer(std::vector<uint8_t>& buffer, size_t size, const char* operation) {
  if (buffer.size() >= size) return {};
  try {
    buffer.resize(size);
  } catch (const std::bad_alloc&) {
    return make_error(ENOMEM, std::string(operation) + ": cannot allocate a " +
                                  std::to_string(size) + "-byte buffer");
  }
  return {};
}

}  // namespace qcowkit::ops
