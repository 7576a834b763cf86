// The internal snapshot table: parsed (bounded and validated) so that the
// snapshots can be listed and their clusters counted by check; never changed.
#pragma once

#include <vector>

#include "qcow2/header.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::qcow2 {

struct SnapshotEntry {
  Qcow2Snapshot info;
  uint64_t l1_table_offset = 0;
  uint32_t l1_size = 0;
};

struct SnapshotTable {
  std::vector<SnapshotEntry> entries;
  uint64_t byte_size = 0;  // bytes the table occupies from header.snapshots_offset
};

Result<SnapshotTable> read_snapshot_table(BlockDevice& file, const Header& header);

}  // namespace qcowkit::qcow2
