// VMDK descriptor files and the images they make of their extent files
// (monolithicFlat, twoGbMaxExtentFlat, twoGbMaxExtentSparse, vmfs), read
// only. Extent files come only through ImageFiles (formats.hpp): the image
// opener's name policy decides what may be read.
//
// Thread safety: the returned device is thread-safe (read-only, nothing
// changes after open). Ownership: it shares the extent files, which the
// opener closes; it closes the sparse extent images it made.
#pragma once

#include <memory>

#include "formats/vmdk_layout.hpp"
#include "qcowkit/formats.hpp"

namespace qcowkit::formats::vmdk {

// True when `file` starts as a text descriptor ("# Disk DescriptorFile").
bool is_descriptor_file(BlockDevice& file);

// The descriptor file's text, bounded (kMaxDescriptorBytes), parsed, and
// checked: a supported create type, known extent types, no parent, a total
// size of at most 2^40 sectors.
Result<Descriptor> read_descriptor_file(BlockDevice& file);
uint64_t descriptor_sectors(const Descriptor& d);

// The guest disk the descriptor describes; EROFS unless read_only.
Result<std::unique_ptr<BlockDevice>> open_descriptor_image(BlockDevice& descriptor, bool read_only,
                                                           ImageFiles& files);

// A sparse extent (its layout loaded) as a read-only image (vmdk.cpp).
Result<std::unique_ptr<BlockDevice>> open_sparse_extent(std::shared_ptr<BlockDevice> file,
                                                        Layout layout);

}  // namespace qcowkit::formats::vmdk
