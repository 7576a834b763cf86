// VMDK: VMware's disk format, the single-file sparse kinds qemu-img writes
// and VMware exports: monolithicSparse (a sparse extent with its descriptor
// inside: header, descriptor, redundant and primary grain directories and
// tables, then 64 KiB grains) and streamOptimized (the same with every
// grain zlib-compressed behind a small marker, written once, in order; the
// grain directory may sit in a footer at the end).
//
// Also read: a descriptor file naming extents in other files
// (monolithicFlat, twoGbMaxExtentFlat, twoGbMaxExtentSparse, vmfs), whose
// extent files are opened only through ImageFiles (formats.hpp), that is
// under the image opener's name policy; such images are read-only.
//
// Refused with a message: differencing images (a parent), compressed
// grains in a descriptor's extents, and every table, grain, marker or
// extent that does not fit its file.
//
// Thread safety: opened images and new monolithicSparse images are
// thread-safe (BlockMapImage). A new streamOptimized image takes writes in
// guest order, one at a time (the copy engine's in-order commits), and
// cannot be read until it is reopened. Ownership: devices share the file
// they were given; close() writes what is pending and leaves closing the
// file to its owner.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qcowkit/block_device.hpp"
#include "qcowkit/byte_sink.hpp"
#include "qcowkit/formats.hpp"

namespace qcowkit {

struct VmdkCreateOptions {
  uint64_t size = 0;               // bytes; rounded up to whole sectors
  bool stream_optimized = false;   // subformat=streamOptimized
  std::string file_name = "disk.vmdk";  // the extent's name the descriptor records
};

struct VmdkDetails {
  uint64_t virtual_size = 0;
  uint64_t grain_size = 0;  // bytes
  bool compressed = false;
  std::string create_type;  // from the descriptor
  uint32_t cid = 0, parent_cid = 0;
};

// True for a sparse extent ("KDMV") or a text descriptor file.
bool looks_like_vmdk(BlockDevice& file);

Result<VmdkDetails> probe_vmdk(BlockDevice& file);

// Compressed (streamOptimized) images open read-only. A descriptor file is
// refused here (ENOTSUP): it needs open_vmdk_with_files.
Result<std::unique_ptr<BlockDevice>> open_vmdk(std::shared_ptr<BlockDevice> file, bool read_only);

// Any VMDK: a descriptor file's extents are opened through `files`.
Result<std::unique_ptr<BlockDevice>> open_vmdk_with_files(std::shared_ptr<BlockDevice> file,
                                                          bool read_only, ImageFiles& files);

// A descriptor file's grain size: its first sparse extent's (opened
// through `files`); 0 when it has none (flat extents only).
Result<uint64_t> vmdk_descriptor_grain_size(BlockDevice& file, ImageFiles& files);

// qemu-img check's vmdk check: every grain that starts at or past the end
// of its extent file is a corruption ("ERROR: cluster offset for sector N
// points after EOF"). Reads the tables without opening the image, so an
// image open refuses is still reported on.
Result<FormatCheckReport> check_vmdk(BlockDevice& file, ImageFiles& files);

// Formats `file` (empty, writable) as a new VMDK; returns it open for writing.
Result<std::unique_ptr<BlockDevice>> create_vmdk(std::shared_ptr<BlockDevice> file,
                                                 const VmdkCreateOptions& options);

// A streamOptimized VMDK being written. Besides in-order writes, it takes
// grains compressed elsewhere (on the copy engine's threads, DeviceSink's
// compression stage), so compression need not wait for the writer.
class VmdkStreamWriter : public BlockDevice {
 public:
  static constexpr uint64_t kGrainBytes = 65536;
  // `packed` is the grain at `offset` (grain aligned, past every grain
  // written so far; the last one zero-padded to a whole grain) as
  // builtin_codecs().zlib_stream compresses it. EINVAL for a grain already
  // partly written, ENOTSUP for one before the grain being written.
  virtual Status store_compressed_grain(uint64_t offset, ConstByteSpan packed) = 0;
};

// A new streamOptimized VMDK written strictly forward onto `sink` (a pipe):
// the header (its grain directory "at the end") and descriptor go out now,
// each grain compressed once the writes have moved past it, and close()
// appends the grain tables, the directory and the footer. Writes must come
// in guest order (the copy engine's in-order commits); nothing can be read
// back. The sink must outlive the device. options.stream_optimized is
// implied.
Result<std::unique_ptr<VmdkStreamWriter>> create_vmdk_stream(ByteSink& sink, const VmdkCreateOptions& options);

}  // namespace qcowkit
