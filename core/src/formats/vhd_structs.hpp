// VHD's on-disk structures (all big-endian), after Microsoft's "Virtual Hard
// Disk Image Format Specification": the 512-byte footer and the 1024-byte
// sparse (dynamic disk) header. Parsing checks every field a reader relies
// on; building produces what qemu-img writes.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "qcowkit/result.hpp"
#include "qcowkit/vhd.hpp"

namespace qcowkit::formats::vhd {

constexpr uint64_t kFooterSize = 512;
constexpr uint64_t kSparseHeaderSize = 1024;
constexpr uint32_t kTypeFixed = 2, kTypeDynamic = 3, kTypeDifferencing = 4;
constexpr uint32_t kUnallocated = 0xffffffff;         // a BAT entry with no block
constexpr uint64_t kMaxSectors = 0xff000000;          // 2040 GiB, as QEMU allows
constexpr uint64_t kMaxGeometry = 65535ull * 16 * 255;  // the CHS maximum, in sectors
constexpr uint32_t kDefaultBlockSize = 2u << 20;
// The largest BAT held in memory: 16 Mi entries, 32 TiB of 2 MiB blocks.
constexpr uint64_t kMaxBatBytes = 64u << 20;

struct Footer {
  uint64_t data_offset = 0;  // the sparse header; all ones for fixed disks
  std::array<char, 4> creator_app{};
  uint64_t original_size = 0, current_size = 0;
  uint16_t cylinders = 0;
  uint8_t heads = 0, sectors = 0;
  uint32_t type = 0;
};

struct SparseHeader {
  uint64_t table_offset = 0;
  uint32_t max_table_entries = 0;
  uint32_t block_size = 0;
};

// One's complement of the byte sum, the checksum field itself counted as 0.
uint32_t checksum(const uint8_t* bytes, size_t size, size_t checksum_at);

bool has_footer_cookie(const uint8_t* bytes);
// Checks cookie and checksum; `where` names the copy in messages.
Result<Footer> parse_footer(const uint8_t* bytes, const char* where);
Result<SparseHeader> parse_sparse_header(const uint8_t* bytes);
// The virtual size QEMU gives an image with this footer.
uint64_t virtual_size(const Footer& footer);

std::array<uint8_t, kFooterSize> build_footer(const Footer& footer);
std::array<uint8_t, kSparseHeaderSize> build_sparse_header(const SparseHeader& header);

// The CHS geometry of the VHD specification's appendix for `sectors`.
VhdGeometry chs_for(uint64_t sectors);

}  // namespace qcowkit::formats::vhd
