// What rebase and commit share: which backing files they may follow (the
// contents work is core's, qcowkit/chain_ops.hpp).
//
// Both verbs exist to work on a backing chain, so they follow backing names
// without --backing-chain, but only under the core's same_directory policy
// (an existing file in the image's own folder, never the image itself): a
// hostile image cannot make them read or write any other file on the
// machine. --backing-chain widens that to any plain file name, as
// everywhere else in qcowkit.
//
// Thread safety: plain functions; the devices passed in are used from the
// calling thread only.
#pragma once

#include <vector>

#include "cli_common.hpp"
#include "image_open.hpp"

namespace qcowkit::cli {

inline BackingPolicy chain_policy(const ParsedArgs& args) {
  return args.has("backing-chain") ? BackingPolicy::allow : BackingPolicy::same_directory;
}

// The hint appended when a backing file is refused.
inline const char* kChainHint =
    "backing files outside the image's folder are followed only with --backing-chain";

}  // namespace qcowkit::cli
