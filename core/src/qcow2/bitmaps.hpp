// Persistent dirty bitmaps: parsed (bounded and validated), listed, counted
// by check as qemu-img counts them, maintained by the engine
// (bitmap_tracking.cpp: enabled bitmaps record every write, zero and
// discard) and changed on request (bitmap_ops.cpp: add, remove, clear,
// enable, disable, merge, each switching to a new directory).
//
// Thread safety: plain functions on values; the caller serializes access to
// the file.
#pragma once

#include <vector>

#include "qcow2/header.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::qcow2 {

inline constexpr uint32_t kBitmapInUse = 1u << 0;
inline constexpr uint32_t kBitmapAuto = 1u << 1;  // enabled: records writes
inline constexpr uint8_t kBitmapTypeDirtyTracking = 1;

// Limits QEMU enforces (block/qcow2.h, block/qcow2-bitmap.c): a writer must
// stay inside them or QEMU refuses the image.
inline constexpr uint32_t kMaxBitmaps = 65535;
inline constexpr uint64_t kMaxBitmapDirectoryBytes = 1024ull * kMaxBitmaps;
inline constexpr size_t kMaxBitmapNameBytes = 1023;
inline constexpr unsigned kMinBitmapGranularityBits = 9;
inline constexpr unsigned kMaxBitmapGranularityBits = 31;
inline constexpr uint64_t kMaxBitmapBytes = 0x20000000;  // the bits of one bitmap

struct BitmapEntry {
  Qcow2Bitmap info;
  uint64_t table_offset = 0;
  uint32_t table_size = 0;  // entries
  uint8_t type = 0;
  uint32_t extra_size = 0;
  std::vector<uint8_t> extra;       // the entry's extra data as found, kept when rewritten
  uint64_t directory_position = 0;  // where the entry starts in the directory
};

struct BitmapDirectory {
  std::vector<BitmapEntry> entries;
};

// Reads the bitmap directory named by the header's bitmaps extension.
Result<BitmapDirectory> read_bitmap_directory(BlockDevice& file, const Header& header);

// The on-disk directory for `entries` (each padded to 8 bytes); sets each
// entry's directory_position.
std::vector<uint8_t> encode_bitmap_directory(std::vector<BitmapEntry>& entries);

// Entries a bitmap table needs to cover `virtual_size` bytes at
// 2^granularity_bits bytes per bit, with `cluster_size` bytes per data cluster.
uint64_t bitmap_table_entries(uint64_t virtual_size, unsigned granularity_bits,
                              uint64_t cluster_size);

// Host clusters a bitmap uses (its table and its data clusters), by offset.
Result<std::vector<uint64_t>> bitmap_clusters(BlockDevice& file, const Header& header,
                                              const BitmapEntry& bitmap);

}  // namespace qcowkit::qcow2
