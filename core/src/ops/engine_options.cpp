#include "ops/engine_options.hpp"

#include "ops/op_support.hpp"

namespace qcowkit::ops {

Result<CopyEngineOptions> engine_options(const OpOptions& options, const DeviceInfo& first,
                                         const DeviceInfo& second, const char* operation) {
  CopyEngineOptions engine;
  engine.alignment = common_alignment(first, second);
  QK_ASSIGN_OR_RETURN(engine.chunk_size,
                      chunk_size_for(options.chunk_size, engine.alignment, operation));
  QK_ASSIGN_OR_RETURN(engine.workers, parallelism_for(options.parallelism, operation));
  engine.operation = operation;
  engine.progress = options.progress;
  return engine;
}

Status run_engine(BlockDevice& source, CopySink& sink, const CopyEngineOptions& options) {
  QK_ASSIGN_OR_RETURN(auto engine, CopyEngine::create(source, sink, options));
  return engine->run();
}

}  // namespace qcowkit::ops
