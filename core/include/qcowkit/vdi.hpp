// VDI: VirtualBox's disk format. A 512-byte header, a block map (one
// little-endian 32-bit entry per 1 MiB block: the block's index in the data
// area, or unallocated / discarded, which read as zeroes), then the data
// area. Dynamic images allocate blocks on first write, static ones have
// every block in place from the start.
//
// Like qemu-img, qcowkit reads and writes version 1.1 images with 1 MiB
// blocks and no extra data per block; differencing images (a parent or link
// UUID) are refused, and so is every block map entry that is out of range,
// shared, or outside the file.
//
// Thread safety: the devices returned are thread-safe (BlockMapImage).
// Ownership: they share the file they were opened on; close() writes what is
// pending and flushes it, and leaves closing the file to its owner.
#pragma once

#include <cstdint>
#include <memory>

#include "qcowkit/block_device.hpp"
#include "qcowkit/formats.hpp"

namespace qcowkit {

struct VdiCreateOptions {
  uint64_t size = 0;         // bytes; rounded up to whole sectors
  bool static_image = false;  // static=on: every block allocated at once
};

struct VdiDetails {
  bool static_image = false;
  uint64_t virtual_size = 0;
  uint32_t block_size = 0;
  uint32_t blocks = 0, blocks_allocated = 0;
};

// True when `file` has a VDI signature where VirtualBox puts it (offset 64).
bool looks_like_vdi(BlockDevice& file);

Result<VdiDetails> probe_vdi(BlockDevice& file);

Result<std::unique_ptr<BlockDevice>> open_vdi(std::shared_ptr<BlockDevice> file, bool read_only);

// Formats `file` (empty, writable) as a new VDI; returns it open read-write.
Result<std::unique_ptr<BlockDevice>> create_vdi(std::shared_ptr<BlockDevice> file,
                                                const VdiCreateOptions& options);

// qemu-img check's vdi check: block map entries past the block count,
// data blocks two entries share, an allocated count that is not the
// header's; each a corruption with qemu-img's message. Reads the block map
// without trusting it.
Result<FormatCheckReport> check_vdi(BlockDevice& file, ImageFiles& files);

}  // namespace qcowkit
