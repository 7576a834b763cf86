// Operations on a backing chain, what `qemu-img rebase` and `commit` do to
// the contents: which ranges a layer holds itself, writing a layer into the
// image below it, and keeping an image's contents while its backing file
// changes. The CLI's rebase and commit verbs only choose the files (under
// the opener's backing policy) and call these.
//
// Thread safety: plain functions; the images passed in may be used by other
// threads meanwhile only for reading.
#pragma once

#include <cstdint>
#include <vector>

#include "qcowkit/qcow2.hpp"

namespace qcowkit {

// Guest ranges [offset, offset + length) that `image` allocates itself (data
// or zeroes in this layer, not left to its backing file), in order.
Result<std::vector<MapEntry>> own_allocations(Qcow2Image& image);

// Writes into `base`, below `size`, what `layer` holds itself: its data on
// the copy engine, and zeroes where it records zeroes. What the layer leaves
// to its backing file is not touched. Does not flush `base`.
Status commit_layer(Qcow2Image& layer, BlockDevice& base, uint64_t size);

// Before `image`'s backing file changes to `new_backing` (nullptr: none):
// every cluster the image does not allocate itself and that reads
// differently from `new_backing` gets its current contents written into the
// image (zeroes as zero clusters), so the guest sees the same bytes after the
// switch. Does not flush.
Status keep_contents_for_new_backing(Qcow2Image& image, BlockDevice* new_backing);

}  // namespace qcowkit
