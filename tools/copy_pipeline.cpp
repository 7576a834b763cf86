// convert's options mapped onto the core's copy engine: the engine walks,
// reads and orders; a DeviceSink detects zeroes, compresses and writes.
#include "copy_pipeline.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "qcowkit/copy_engine.hpp"
#include "qcowkit/device_sink.hpp"

namespace qcowkit::cli {
namespace {

constexpr uint64_t kChunk = 1u << 20;  // bytes a read covers (at least one granule)
constexpr unsigned kDefaultWorkers = 4;

}  // namespace

Status run_copy_pipeline(BlockDevice& src, BlockDevice& dst, const CopyPipelineOptions& options) {
  const uint64_t src_size = src.info().size, dst_size = dst.info().size;
  if (dst_size < src_size)
    return make_error(ERANGE, "destination (" + std::to_string(dst_size) +
                                  " bytes) is smaller than the source (" +
                                  std::to_string(src_size) + " bytes)");
  const uint64_t granule = std::max<uint64_t>(options.granule ? options.granule : 4096, 512);

  DeviceSinkOptions sink_options;
  sink_options.min_zero_run = options.min_sparse;
  sink_options.destination_is_zero = true;  // a new image
  sink_options.source_size = src_size;
  sink_options.cluster_size = granule;
  sink_options.compress_cluster = options.compress_cluster;
  sink_options.store_packed = options.store_packed;
  sink_options.operation = "writing the destination";
  DeviceSink sink(dst, sink_options);

  CopyEngineOptions engine;
  engine.chunk_size = std::max(kChunk, granule);
  engine.granule = granule;
  engine.use_extents = options.min_sparse != 0;
  // -m: requests in flight. Part of each one's time is I/O, so four keep
  // two cores busy (qemu-img runs four compression threads too).
  engine.workers = std::clamp(options.threads ? options.threads : kDefaultWorkers, 1u, 64u);
  // Compressed clusters are always stored in order, one at a time.
  engine.in_order = options.in_order || sink.compressing();
  engine.operation = "reading the source";
  engine.progress = options.progress;
  QK_ASSIGN_OR_RETURN(auto copier, CopyEngine::create(src, sink, engine));
  return copier->run();
}

namespace {

// Fills `buffer` from `fd` unless the input ends first; returns the bytes read.
Result<size_t> read_full(int fd, ByteSpan buffer) {
  size_t done = 0;
  while (done < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int code = errno;
      return make_error(code, std::string("reading standard input failed: ") + std::strerror(code));
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace

Result<uint64_t> copy_from_fd(int fd, BlockDevice& dst, const StreamInOptions& options) {
  const uint64_t granule = std::max<uint64_t>(options.granule, 512);
  const uint64_t block = std::max(kChunk, granule) / granule * granule;
  const uint64_t align = std::max<uint64_t>(options.size_alignment, 1);
  std::vector<uint8_t> buffer(block);
  uint64_t total = 0;
  for (;;) {
    QK_ASSIGN_OR_RETURN(size_t got, read_full(fd, ByteSpan(buffer)));
    if (got == 0) break;
    const uint64_t end = total + got;
    const uint64_t grown = (end + align - 1) / align * align;
    QK_TRY(dst.resize(grown));
    // The bytes past the input's end up to the aligned size read as zeroes.
    std::fill(buffer.begin() + got, buffer.end(), 0);
    for (uint64_t pos = 0; pos < got; pos += granule) {
      const uint64_t n = std::min<uint64_t>(granule, grown - total - pos);
      ConstByteSpan bytes(buffer.data() + pos, n);
      if (options.min_sparse && is_all_zero(bytes)) continue;
      Status st = options.store_cluster ? options.store_cluster(total + pos, bytes)
                                        : dst.write(total + pos, bytes);
      if (!st.ok())
        return with_context(st.error(), "writing the destination at offset " + std::to_string(total + pos));
    }
    total = end;
    if (options.progress) options.progress(total);
    if (got < buffer.size()) break;
  }
  return total;
}

}  // namespace qcowkit::cli
