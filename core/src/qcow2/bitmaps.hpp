// Persistent dirty bitmaps: parsed (bounded and validated), listed, counted
// by check as qemu-img counts them, and maintained by the engine
// (bitmap_tracking.cpp): enabled bitmaps record every write, zero and discard.
#pragma once

#include <vector>

#include "qcow2/header.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::qcow2 {

inline constexpr uint32_t kBitmapInUse = 1u << 0;
inline constexpr uint32_t kBitmapAuto = 1u << 1;  // enabled: records writes
inline constexpr uint8_t kBitmapTypeDirtyTracking = 1;

struct BitmapEntry {
  Qcow2Bitmap info;
  uint64_t table_offset = 0;
  uint32_t table_size = 0;  // entries
  uint8_t type = 0;
  uint32_t extra_size = 0;
  uint64_t directory_position = 0;  // where the entry starts in the directory
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
