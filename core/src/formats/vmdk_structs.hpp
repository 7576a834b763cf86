// VMDK's on-disk structures (little-endian), after VMware's "Virtual Disk
// Format 1.1": the 512-byte sparse extent header, the embedded text
// descriptor, and streamOptimized's markers.
#pragma once

#include <cstdint>
#include <string>

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

struct Descriptor {
  std::string create_type;
  uint32_t cid = 0, parent_cid = 0xffffffff;
  bool has_parent = false;
  int sparse_extents = 0, other_extents = 0;
};

// Parses the descriptor's text (up to its first NUL); EINVAL when it has no
// createType or no extent line.
Result<Descriptor> parse_descriptor(const std::string& text);
std::string build_descriptor(const std::string& create_type, uint64_t sectors,
                             const std::string& file_name, uint32_t cid);

}  // namespace qcowkit::formats::vmdk
