// A VMDK sparse extent's layout, checked against its file: what open reads
// and what the writers lay out (the same arithmetic as qemu-img, so their
// files look alike).
#pragma once

#include <memory>
#include <vector>

#include "formats/vmdk_structs.hpp"
#include "qcowkit/block_device.hpp"

namespace qcowkit::formats::vmdk {

struct Layout {
  Header header;
  Descriptor descriptor;
  uint64_t grain_bytes = 0, grains = 0, tables = 0;  // tables: grain directory entries
  std::vector<uint32_t> gd;                           // sector of each grain table (0: none)
  std::vector<uint32_t> gt;                           // every grain's entry, table after table
  // Sector of each redundant grain table; empty when the image keeps none
  // or its redundant directory or a table lies outside the file (then only
  // the primary tables are read and updated, as they are all readers use).
  std::vector<uint32_t> rgd;
};

// Reads the header (from the footer when the directory is at the end), the
// descriptor, the grain directory and every grain table, checking each.
// `part_of_descriptor`: the file is an extent a separate descriptor file
// named (twoGbMaxExtentSparse), so its own embedded descriptor, if any, is
// not read. With `grains_past_eof`, grains that point past the end of the
// file are listed there (for check) instead of failing the load.
// In an uncompressed extent no two of the header, descriptor, directories,
// tables and grains may overlap: a guest write lands where a grain entry
// points, and must not rewrite the image's own metadata or another grain.
Result<Layout> load_layout(BlockDevice& file, bool part_of_descriptor = false,
                           std::vector<uint64_t>* grains_past_eof = nullptr);

// A new image's header: descriptor at sector 1 (20 sectors), then the
// redundant directory and tables, the directory and tables, grains after.
Header new_header(uint64_t size, bool compressed);
// Sectors one directory occupies, and one table.
uint64_t directory_sectors(const Header& h);
constexpr uint64_t kTableSectors = kGtEntries * 4 / 512;

// Writes header, descriptor and both zeroed directories with their tables.
Status write_new_image(BlockDevice& file, const Header& h, const std::string& create_type,
                       const std::string& file_name);

}  // namespace qcowkit::formats::vmdk
