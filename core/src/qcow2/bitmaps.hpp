// Persistent dirty bitmaps: qcowkit keeps them as they are (it never changes
// them), lists them, and counts their clusters so that check agrees with
// qemu-img. Writing to an image clears the "bitmaps consistent" autoclear bit,
// which tells QEMU the bitmaps no longer describe the data.
#pragma once

#include <vector>

#include "qcow2/header.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::qcow2 {

struct BitmapEntry {
  Qcow2Bitmap info;
  uint64_t table_offset = 0;
  uint32_t table_size = 0;  // entries
};

struct BitmapDirectory {
  std::vector<BitmapEntry> entries;
};

// Reads the bitmap directory named by the header's bitmaps extension.
Result<BitmapDirectory> read_bitmap_directory(BlockDevice& file, const Header& header);

// Host clusters a bitmap uses (its table and its data clusters), by offset.
Result<std::vector<uint64_t>> bitmap_clusters(BlockDevice& file, const Header& header,
                                              const BitmapEntry& bitmap);

}  // namespace qcowkit::qcow2
