// VHD ("vpc" in qemu-img's words): Microsoft's Virtual PC / Hyper-V disk
// format, fixed (the raw disk then a 512-byte footer) and dynamic (a footer
// copy, a sparse header, a block allocation table, then blocks, each a
// sector bitmap and its data, then the footer).
//
// Sizes follow qemu-img exactly, so both agree on every image's virtual size:
// images whose creator is Virtual PC or QEMU ("vpc ", "qemu") are as large as
// their CHS geometry says, those of Hyper-V, disk2vhd, XenServer and QEMU's
// force_size ("win ", "d2v ", "tap", "CTXS", "qem2") as their footer's
// current size, and so is any image whose geometry is the CHS maximum. A new
// image's size is rounded up to the next CHS geometry, as qemu-img does,
// unless force_size asks for the exact size.
//
// Differencing images are read (only through open_vhd_with_files, which
// gets the parent from the image opener, under its backing-file policy):
// the parent's name comes from the relative (W2ru), else absolute (W2ku)
// parent locator, else the header's parent name; sectors a block's bitmap
// leaves clear, and unallocated blocks, read from the parent. Footer and sparse-header
// checksums are verified; every table is bounded and must lie inside the
// file.
//
// Thread safety: the devices returned are thread-safe (BlockMapImage).
// Ownership: they share the file they were opened on; close() writes what is
// pending and flushes it, and leaves closing the file to its owner.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qcowkit/block_device.hpp"
#include "qcowkit/formats.hpp"

namespace qcowkit {

struct VhdCreateOptions {
  uint64_t size = 0;        // bytes asked for; see vhd_size_for()
  bool fixed = false;       // subformat=fixed (the default is dynamic)
  bool force_size = false;  // keep `size` exactly (creator "qem2"), for Azure and Hyper-V
};

struct VhdGeometry {
  uint16_t cylinders = 0;
  uint8_t heads = 0, sectors = 0;
  uint64_t size = 0;  // the image's virtual size in bytes
};

struct VhdDetails {
  bool fixed = false;
  uint64_t virtual_size = 0;
  uint32_t block_size = 0;  // dynamic images: bytes per block
  VhdGeometry geometry;
  std::string creator_app;  // four characters, as stored
  std::string parent;       // differencing images: the parent's name, '/'-separated
};

// The geometry and virtual size qemu-img gives a new image of `size` bytes
// (EFBIG past 2040 GiB).
Result<VhdGeometry> vhd_size_for(uint64_t size, bool force_size);

// True when `file` starts with a VHD footer copy (a dynamic image). Fixed
// images have their footer only at the end; like qemu-img, qcowkit does not
// guess them from content (a raw disk may end with anything): open them
// with the format named.
bool looks_like_vhd(BlockDevice& file);

// Reads and checks the footer (and the sparse header of a dynamic image).
Result<VhdDetails> probe_vhd(BlockDevice& file);

// ENOTSUP for a differencing image (it needs open_vhd_with_files).
Result<std::unique_ptr<BlockDevice>> open_vhd(std::shared_ptr<BlockDevice> file, bool read_only);

// Any VHD; a differencing one (read-only, EROFS otherwise) reads what it
// does not hold from files.backing().
Result<std::unique_ptr<BlockDevice>> open_vhd_with_files(std::shared_ptr<BlockDevice> file,
                                                         bool read_only, ImageFiles& files);

// Formats `file` (empty, writable) as a new VHD; returns it open read-write.
Result<std::unique_ptr<BlockDevice>> create_vhd(std::shared_ptr<BlockDevice> file,
                                                const VhdCreateOptions& options);

}  // namespace qcowkit
