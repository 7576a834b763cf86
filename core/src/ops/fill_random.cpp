// fill_random: writes a seeded, reproducible byte stream over a whole device.
#include <algorithm>

#include "ops/op_support.hpp"
#include "ops/random_stream.hpp"
#include "ops/request_pool.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {

Status fill_random(BlockDevice& device, uint64_t seed, const OpOptions& options) {
  constexpr const char* kOp = "fill_random";
  const DeviceInfo info = device.info();
  if (info.read_only) return make_error(EROFS, std::string(kOp) + ": device is read-only");
  const uint64_t alignment = ops::common_alignment(info, info);
  QK_ASSIGN_OR_RETURN(const uint64_t chunk,
                      ops::chunk_size_for(options.chunk_size, alignment, kOp));
  QK_ASSIGN_OR_RETURN(const unsigned parallelism, ops::parallelism_for(options.parallelism, kOp));
  const size_t buffer_size = static_cast<size_t>(std::min(chunk, info.size));

  ops::ProgressMeter progress(options.progress, info.size);
  ops::RequestPool pool(parallelism);
  std::vector<std::vector<uint8_t>> buffers(pool.slots());
  auto fill_chunk = [&](uint64_t offset, size_t length, unsigned slot) -> Status {
    QK_TRY(ops::ensure_buffer(buffers[slot], buffer_size, kOp));
    ByteSpan data(buffers[slot].data(), length);
    ops::random_bytes(seed, offset, data);
    if (auto st = device.write(offset, data); !st.ok())
      return ops::failed_at(kOp, "write", offset, st.error());
    progress.add(length);
    return {};
  };
  for (uint64_t pos = 0; pos < info.size;) {
    const size_t n = static_cast<size_t>(std::min(chunk, info.size - pos));
    if (!pool.submit([=, &fill_chunk](unsigned slot) { return fill_chunk(pos, n, slot); })) break;
    pos += n;
  }
  QK_TRY(pool.finish());
  progress.finish();
  return {};
}

}  // namespace qcowkit
