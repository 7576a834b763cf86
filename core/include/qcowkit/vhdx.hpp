// VHDX: Hyper-V's disk format. A 1 MiB header section (file identifier, two
// headers chosen by sequence number, two copies of a region table), a log
// (a circular journal of metadata writes), a block allocation table (BAT)
// and a metadata region, then payload blocks of 1 to 256 MiB.
//
// qcowkit reads dynamic and fixed images with 512- or 4096-byte logical
// sectors. Every header, region table and log entry is CRC-32C checked,
// every region, metadata item and BAT entry must lie inside the file and
// apart from the others. Payload blocks that are not present, zero,
// unmapped or undefined read as zeroes; partially present blocks (sector
// bitmaps) read their present sectors and zeroes elsewhere, read-only.
// Differencing images (a parent) are refused with ENOTSUP.
//
// A dirty image (log GUID set) has its newest valid log sequence replayed:
// a read-only open replays it into memory and leaves the file untouched; a
// writable open replays it into the file, flushes, and only then clears
// the log GUID in both headers.
//
// qcowkit writes dynamic images (blocks appended at the end of the file)
// and fixed ones (every block in place), as qemu-img lays them out.
//
// Thread safety: the devices returned are thread-safe (BlockMapImage).
// Ownership: they share the file they were opened on; close() writes what is
// pending and flushes it, and leaves closing the file to its owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

struct VhdxCreateOptions {
  uint64_t size = 0;        // bytes; rounded up to whole 512-byte sectors
  bool fixed = false;       // subformat=fixed (the default is dynamic)
  uint32_t block_size = 0;  // block_size: 1..256 MiB, a power of two; 0 = qemu-img's choice by size
  uint32_t log_size = 1u << 20;  // log_size: rounded up to whole MiB
  // block_state_zero: blocks never written are marked ZERO (qemu-img's
  // default) rather than NOT_PRESENT; both read as zeroes.
  bool block_state_zero = true;
};

struct VhdxDetails {
  bool fixed = false;  // the file parameters say "leave blocks allocated"
  uint64_t virtual_size = 0;
  uint32_t block_size = 0;
  uint32_t logical_sector_size = 0, physical_sector_size = 0;
  bool log_dirty = false;  // the header names a log GUID: a log to replay
};

// The block size qemu-img picks for a new image of `size` bytes.
uint32_t vhdx_default_block_size(uint64_t size);

// CRC-32C (Castagnoli) as VHDX checksums use it.
uint32_t vhdx_crc32c(const uint8_t* data, size_t size);

// True when `file` starts with the "vhdxfile" signature.
bool looks_like_vhdx(BlockDevice& file);

// Reads and checks the headers, region table and metadata (not the log).
Result<VhdxDetails> probe_vhdx(BlockDevice& file);

Result<std::unique_ptr<BlockDevice>> open_vhdx(std::shared_ptr<BlockDevice> file, bool read_only);

// Formats `file` (empty, writable) as a new VHDX; returns it open read-write.
Result<std::unique_ptr<BlockDevice>> create_vhdx(std::shared_ptr<BlockDevice> file,
                                                 const VhdxCreateOptions& options);

}  // namespace qcowkit
