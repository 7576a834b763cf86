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

// One parent locator entry (differencing disks): where a platform's spelling
// of the parent's name lies in the file.
struct ParentLocator {
  uint32_t platform = 0;     // kPlatformW2ru, kPlatformW2ku, ...
  uint32_t data_length = 0;  // bytes
  uint64_t data_offset = 0;  // file offset
};
constexpr uint32_t kPlatformW2ru = 0x57327275;  // "W2ru": relative, UTF-16LE
constexpr uint32_t kPlatformW2ku = 0x57326b75;  // "W2ku": absolute, UTF-16LE
constexpr uint32_t kMaxLocatorBytes = 64 * 1024;  // a path name, whatever the file says

struct SparseHeader {
  uint64_t table_offset = 0;
  uint32_t max_table_entries = 0;
  uint32_t block_size = 0;
  std::string parent_name;  // the header's UTF-16BE parent name, as UTF-8
  std::array<ParentLocator, 8> locators{};
};

// UTF-16 (big- or little-endian) to UTF-8, up to the first NUL; unpaired
// surrogates become U+FFFD.
std::string utf16_to_utf8(const uint8_t* bytes, size_t size, bool big_endian);

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
