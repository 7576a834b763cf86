// VMDK's on-disk structures (little-endian), after VMware's "Virtual Disk
// Format 1.1": the 512-byte sparse extent header, the embedded text
// descriptor, and streamOptimized's markers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qcowkit/result.hpp"

namespace qcowkit::formats::vmdk {

constexpr uint32_t kMagic = 0x564d444b;  // "KDMV"
constexpr uint32_t kFlagNewlineTest = 1u << 0, kFlagRedundantTable = 1u << 1,
                   kFlagZeroGrain = 1u << 2, kFlagCompressed = 1u << 16,
                   kFlagMarkers = 1u << 17;
constexpr uint64_t kGdAtEnd = ~uint64_t{0};
constexpr uint32_t kGtEntries = 512;  // entries per grain table, the only count QEMU takes
constexpr uint32_t kMarkerEndOfStream = 0, kMarkerFooter = 3;
// Bounds that keep memory use small whatever a file claims.
constexpr uint64_t kMaxGrainBytes = 1u << 20;
constexpr uint64_t kMaxTableBytes = 64u << 20;  // all grain tables in memory
constexpr uint64_t kMaxDescriptorBytes = 1u << 20;
// A descriptor line longer than this is not a descriptor (QEMU's own
// descriptor lines are well under 1 KiB), and a disk of more extents is
// refused: twoGbMaxExtent* needs 1024 for 2 TiB.
constexpr size_t kMaxDescriptorLine = 4096;
constexpr size_t kMaxExtents = 4096;

struct Header {
  uint32_t version = 0, flags = 0;
  uint64_t capacity = 0;     // sectors
  uint64_t grain = 0;        // sectors per grain
  uint64_t descriptor_offset = 0, descriptor_size = 0;  // sectors
  uint32_t gt_entries = 0;
  uint64_t rgd_offset = 0, gd_offset = 0, overhead = 0;  // sectors
  uint16_t compress_algorithm = 0;
};

Result<Header> parse_header(const uint8_t* bytes);
void build_header(const Header& header, uint8_t* bytes512);

// One extent line: `RW 4192256 SPARSE "disk-s001.vmdk"`,
// `RW 8192 FLAT "disk-flat.vmdk" 0`, `RW 2048 ZERO`.
struct ExtentLine {
  std::string access;     // RW, RDONLY, NOACCESS
  uint64_t sectors = 0;
  std::string type;       // FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, ...
  std::string file;       // empty for ZERO
  uint64_t offset = 0;    // FLAT / VMFS: the extent's first sector in its file
  bool has_offset = false;
};

struct Descriptor {
  std::string create_type;
  uint32_t cid = 0, parent_cid = 0xffffffff;
  bool has_parent = false;
  int sparse_extents = 0, other_extents = 0;
  std::vector<ExtentLine> extents;  // in guest order
};

// Parses the descriptor's text (up to its first NUL); EINVAL when it has no
// createType or no extent line, an extent line it cannot read, a line over
// kMaxDescriptorLine bytes or more than kMaxExtents extents.
Result<Descriptor> parse_descriptor(const std::string& text);
std::string build_descriptor(const std::string& create_type, uint64_t sectors,
                             const std::string& file_name, uint32_t cid);

}  // namespace qcowkit::formats::vmdk
