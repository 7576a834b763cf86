// fold, fold_mapped: the copy engine reads ahead while the callback (usually
// stateful) is called in order, one chunk at a time. fold_unmapped needs no
// data, only the extent walk.
#include "copy/segment_walker.hpp"
#include "ops/engine_options.hpp"
#include "ops/op_support.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {
namespace {

class FoldSink : public CopySink {
 public:
  explicit FoldSink(const FoldFn& fn) : fn_(fn) {}
  Result<Flow> commit(CopyChunk& chunk) override {
    QK_TRY(fn_(chunk.offset, ConstByteSpan(chunk.data.data(), chunk.length)));
    return Flow::proceed;
  }

 private:
  const FoldFn& fn_;
};

Status fold_with(BlockDevice& device, uint64_t chunk_size, const FoldFn& fn, bool use_extents,
                 const char* operation) {
  const DeviceInfo info = device.info();
  OpOptions options;
  options.chunk_size = chunk_size;
  QK_ASSIGN_OR_RETURN(CopyEngineOptions engine,
                      ops::engine_options(options, info, info, operation));
  engine.use_extents = use_extents;
  // Chunks may be large (up to kMaxChunkSize): read one ahead, no more.
  engine.workers = std::min(engine.workers, 2u);
  engine.max_queued = 1;
  FoldSink sink(fn);
  return ops::run_engine(device, sink, engine);
}

}  // namespace

Status fold(BlockDevice& device, uint64_t chunk_size, const FoldFn& fn) {
  return fold_with(device, chunk_size, fn, /*use_extents=*/false, "fold");
}

Status fold_mapped(BlockDevice& device, uint64_t chunk_size, const FoldFn& fn) {
  return fold_with(device, chunk_size, fn, /*use_extents=*/true, "fold_mapped");
}

Status fold_unmapped(BlockDevice& device, const RangeFn& fn) {
  constexpr const char* kOp = "fold_unmapped";
  const DeviceInfo info = device.info();
  engine::SegmentWalker walker(device, nullptr, info.size, ops::common_alignment(info, info), kOp);
  for (;;) {
    QK_ASSIGN_OR_RETURN(const std::optional<engine::Segment> segment, walker.next());
    if (!segment) return {};
    // The walker merges zero and hole extents, so each range is maximal.
    if (!segment->mapped) QK_TRY(fn(segment->offset, segment->length));
  }
}

}  // namespace qcowkit
