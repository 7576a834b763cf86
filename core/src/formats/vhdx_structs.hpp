// VHDX on-disk structures shared by the image (vhdx.cpp) and the log
// (vhdx_log.cpp): constants from Microsoft's VHDX specification, the
// header, and the log replay. All integers are little-endian; GUIDs are
// stored as Microsoft lays them out (three little-endian fields, 8 bytes).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit::formats::vhdx {

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;
constexpr uint64_t kHeaderSectionSize = 1 * MiB;
constexpr uint64_t kHeader1At = 64 * KiB, kHeader2At = 128 * KiB, kHeaderSize = 4 * KiB;
constexpr uint64_t kRegionTable1At = 192 * KiB, kRegionTable2At = 256 * KiB, kRegionTableSize = 64 * KiB;
constexpr uint64_t kMetadataTableSize = 64 * KiB;
constexpr uint32_t kMaxTableEntries = 2047;  // region and metadata tables
constexpr uint32_t kMinBlockSize = 1 * MiB, kMaxBlockSize = 256 * MiB;
constexpr uint64_t kMaxVirtualSize = 64ull << 40;  // 64 TiB, the spec's and qemu-img's limit
constexpr uint64_t kSectorsPerChunk = 1ull << 23;  // sectors one sector bitmap block covers
constexpr uint64_t kLogSector = 4 * KiB;

// Signatures, as the little-endian integers at the start of each structure.
constexpr uint32_t kHeadSig = 0x64616568;  // "head"
constexpr uint32_t kRegiSig = 0x69676572;  // "regi"
constexpr uint32_t kLogeSig = 0x65676f6c;  // "loge"
constexpr uint32_t kZeroSig = 0x6f72657a;  // "zero"
constexpr uint32_t kDescSig = 0x63736564;  // "desc"
constexpr uint32_t kDataSig = 0x61746164;  // "data"
constexpr uint64_t kMetadataSig = 0x617461646174656dull;  // "metadata"

// BAT entry states (bits 0-2); the file offset in MiB is bits 20-63.
enum : uint32_t {
  kNotPresent = 0,
  kUndefined = 1,
  kZero = 2,
  kUnmapped = 3,
  kFullyPresent = 6,
  kPartiallyPresent = 7,
};
constexpr uint64_t kBatStateMask = 7, kBatOffsetMask = ~((1ull << 20) - 1);

using Guid = std::array<uint8_t, 16>;
// {data1, data2, data3, data4[8]} stored little-endian as the spec writes it.
Guid make_guid(uint32_t d1, uint16_t d2, uint16_t d3, std::array<uint8_t, 8> d4);
Guid random_guid();
bool is_zero_guid(const Guid& g);

extern const Guid kBatRegion, kMetadataRegion;
extern const Guid kFileParameters, kVirtualDiskSize, kPage83, kLogicalSectorSize,
    kPhysicalSectorSize, kParentLocator;

struct Header {
  uint64_t sequence = 0;
  Guid file_write{}, data_write{}, log{};
  uint16_t log_version = 0, version = 1;
  uint32_t log_length = 0;
  uint64_t log_offset = 0;
};

// The 4 KiB header block with its checksum.
std::array<uint8_t, kHeaderSize> build_header(const Header& h);
// Writes `h` into the slot that is not `current` (0 or 1), flushes, and
// returns the slot now current: the spec's way to switch headers safely.
Result<int> write_next_header(BlockDevice& file, Header h, int current);

// True when the CRC-32C of `size` bytes, with the 4 bytes at `crc_at`
// counted as zeroes, equals the value stored there.
bool checksum_ok(const uint8_t* data, size_t size, size_t crc_at);
void store_checksum(uint8_t* data, size_t size, size_t crc_at);

// What the active log sequence writes, in order. A data write is one 4 KiB
// sector; a zero write a run of whole sectors.
struct LogWrite {
  uint64_t offset = 0;
  uint64_t zero_length = 0;    // > 0: zeroes
  std::vector<uint8_t> data;   // otherwise: kLogSector bytes
};
struct LogReplay {
  std::vector<LogWrite> writes;
  uint64_t last_file_offset = 0;  // the file's size after the replay, at least
  uint64_t entries = 0;
};

// Finds the newest valid sequence in the log `h` names (h.log non-zero)
// and collects its writes. An empty log (no valid sequence) gives none.
// Entries that claim this log but are malformed are errors naming them.
Result<LogReplay> read_log(BlockDevice& file, const Header& h);

// Applies a replay to the file and flushes it.
Status apply_log(BlockDevice& file, const LogReplay& replay);

// A read-only view of `file` as it would be after the replay; the file is
// never written. Thread-safe; shares `file`.
std::shared_ptr<BlockDevice> replay_overlay(std::shared_ptr<BlockDevice> file, LogReplay replay);

}  // namespace qcowkit::formats::vhdx
