// sparse_copy: copies only what the source maps as data. Holes and zero
// ranges become write_zeroes(may_trim) on the destination (or nothing at all
// when it is known to be zero), so a sparse image stays sparse. The copy
// engine walks the extents; its sink applies the zero-detection rule.
#include "ops/engine_options.hpp"
#include "ops/op_support.hpp"
#include "qcowkit/device_sink.hpp"

namespace qcowkit {

Status sparse_copy(BlockDevice& src, BlockDevice& dst, const CopyOptions& options) {
  constexpr const char* kOp = "sparse_copy";
  QK_TRY(ops::check_copy_devices(src.info(), dst.info(), kOp));
  QK_ASSIGN_OR_RETURN(CopyEngineOptions engine,
                      ops::engine_options(options, src.info(), dst.info(), kOp));
  engine.deliver_unmapped = !options.destination_is_zero;
  engine.in_order = false;
  DeviceSinkOptions sink_options;
  // Like qemu-img convert's default: zero runs shorter than 4 KiB stay data.
  sink_options.min_zero_run = options.detect_zeroes ? 4096 : 0;
  sink_options.destination_is_zero = options.destination_is_zero;
  sink_options.flush_at_end = true;
  sink_options.operation = kOp;
  DeviceSink sink(dst, sink_options);
  return ops::run_engine(src, sink, engine);
}

}  // namespace qcowkit
