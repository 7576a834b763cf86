// How a block operation's OpOptions become the copy engine's options: the
// requests are sized to both devices' sectors, the parallelism checked.
#pragma once

#include "qcowkit/block_ops.hpp"
#include "qcowkit/copy_engine.hpp"

namespace qcowkit::ops {

// `second` (may be null) is the other device of the operation: its sector
// size counts for the alignment.
Result<CopyEngineOptions> engine_options(const OpOptions& options, const DeviceInfo& first,
                                         const DeviceInfo& second, const char* operation);

// Creates the engine and runs it to the end.
Status run_engine(BlockDevice& source, CopySink& sink, const CopyEngineOptions& options);

}  // namespace qcowkit::ops
