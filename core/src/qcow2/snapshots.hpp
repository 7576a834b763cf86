// The internal snapshot table: parsed (bounded and validated) so that the
// snapshots can be listed and their clusters counted by check, and written
// anew when a snapshot is created or deleted (snapshot_ops.cpp).
#pragma once

#include <vector>

#include "qcow2/header.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::qcow2 {

struct SnapshotEntry {
  Qcow2Snapshot info;
  uint64_t l1_table_offset = 0;
  uint32_t l1_size = 0;
  std::vector<uint8_t> extra;  // the entry's extra data as found, kept when rewritten
};

struct SnapshotTable {
  std::vector<SnapshotEntry> entries;
  uint64_t byte_size = 0;  // bytes the table occupies from header.snapshots_offset
};

Result<SnapshotTable> read_snapshot_table(BlockDevice& file, const Header& header);

// The on-disk form of `entries`, each padded to 8 bytes. The extra data of
// an entry is `extra` with its first 24 bytes (large VM state size, virtual
// size, icount) taken from `info`.
std::vector<uint8_t> encode_snapshot_table(const std::vector<SnapshotEntry>& entries);

}  // namespace qcowkit::qcow2
