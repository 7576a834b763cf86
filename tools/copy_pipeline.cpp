// convert's options mapped onto the core's copy engine: the engine walks,
// reads and orders; a DeviceSink detects zeroes, compresses and writes.
#include "copy_pipeline.hpp"

#include <algorithm>

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

}  // namespace qcowkit::cli
