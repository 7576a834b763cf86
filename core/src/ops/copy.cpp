// copy: every byte of the source to the destination, chunk by chunk, with
// several requests in flight (the copy engine, reading every byte, writing
// it all as data).
#include "ops/engine_options.hpp"
#include "ops/op_support.hpp"
#include "qcowkit/device_sink.hpp"

namespace qcowkit {

Status copy(BlockDevice& src, BlockDevice& dst, const CopyOptions& options) {
  constexpr const char* kOp = "copy";
  QK_TRY(ops::check_copy_devices(src.info(), dst.info(), kOp));
  QK_ASSIGN_OR_RETURN(CopyEngineOptions engine,
                      ops::engine_options(options, src.info(), dst.info(), kOp));
  engine.use_extents = false;
  engine.in_order = false;  // any order: a plain device takes writes as they come
  DeviceSinkOptions sink_options;
  sink_options.min_zero_run = 0;
  sink_options.destination_is_zero = false;
  sink_options.flush_at_end = true;
  sink_options.operation = kOp;
  DeviceSink sink(dst, sink_options);
  return ops::run_engine(src, sink, engine);
}

}  // namespace qcowkit
