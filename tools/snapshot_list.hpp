// The snapshot list as qemu-img prints it (`info`, `snapshot -l`).
#pragma once

#include <vector>

#include "qcowkit/qcow2.hpp"

namespace qcowkit::cli {

// Prints "Snapshot list:" and one row per snapshot to stdout.
void print_snapshot_list(const std::vector<Qcow2Snapshot>& snapshots);

}  // namespace qcowkit::cli
