// fill_random: writes a seeded, reproducible byte stream over a whole device.
// The copy engine generates (rather than reads) each chunk on any thread and
// writes it in any order.
#include "ops/engine_options.hpp"
#include "ops/op_support.hpp"
#include "ops/random_stream.hpp"
#include "qcowkit/block_ops.hpp"
#include "qcowkit/device_sink.hpp"

namespace qcowkit {
namespace {

class RandomSink : public DeviceSink {
 public:
  RandomSink(BlockDevice& device, uint64_t seed, const DeviceSinkOptions& options)
      : DeviceSink(device, options), seed_(seed) {}
  Status prepare(CopyChunk& chunk) override {
    ops::random_bytes(seed_, chunk.offset, std::span<uint8_t>(chunk.data.data(), chunk.length));
    return DeviceSink::prepare(chunk);
  }

 private:
  const uint64_t seed_;
};

}  // namespace

Status fill_random(BlockDevice& device, uint64_t seed, const OpOptions& options) {
  constexpr const char* kOp = "fill_random";
  const DeviceInfo info = device.info();
  if (info.read_only) return make_error(EROFS, std::string(kOp) + ": device is read-only");
  QK_ASSIGN_OR_RETURN(CopyEngineOptions engine, ops::engine_options(options, info, info, kOp));
  engine.use_extents = false;
  engine.read_source = false;
  engine.in_order = false;
  DeviceSinkOptions sink_options;
  sink_options.min_zero_run = 0;
  sink_options.destination_is_zero = false;
  sink_options.operation = kOp;
  RandomSink sink(device, seed, sink_options);
  return ops::run_engine(device, sink, engine);
}

}  // namespace qcowkit
