// qcow (version 1): QEMU's first copy-on-write format, read-only. A header,
// an L1 table of L2 table offsets, L2 tables of cluster offsets (bit 63:
// compressed, raw deflate with the compressed length in the high bits).
// Images with a backing file or encryption are refused; every table and
// cluster must lie inside the file, and all L2 tables together fit in
// 64 MiB of memory.
//
// Thread safety: the devices returned are thread-safe (BlockMapImage).
// Ownership: they share the file; close() leaves closing it to its owner.
#pragma once

#include <cstdint>
#include <memory>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

struct Qcow1Details {
  uint64_t virtual_size = 0;
  uint32_t cluster_size = 0;
};

// True for the qcow magic with version 1 (qcow2 shares the magic).
bool looks_like_qcow1(BlockDevice& file);

Result<Qcow1Details> probe_qcow1(BlockDevice& file);

// Read-only: asking for a writable image fails with EROFS.
Result<std::unique_ptr<BlockDevice>> open_qcow1(std::shared_ptr<BlockDevice> file, bool read_only);

}  // namespace qcowkit
