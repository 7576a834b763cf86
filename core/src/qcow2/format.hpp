// On-disk constants of the qcow2 format (QEMU's docs/interop/qcow2.rst) and
// the limits QEMU enforces when opening an image, which qcowkit copies.
#pragma once

#include <cstdint>

namespace qcowkit::qcow2 {

inline constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
inline constexpr uint32_t kV2HeaderLength = 72;
inline constexpr uint32_t kV3MinHeaderLength = 104;
inline constexpr uint32_t kV3HeaderLength = 112;  // with compression_type, padded to 8

// Header field offsets we update in place (everything big-endian).
inline constexpr uint64_t kOffSize = 24;
inline constexpr uint64_t kOffL1Size = 36;
inline constexpr uint64_t kOffL1Offset = 40;
inline constexpr uint64_t kOffRefcountTableOffset = 48;
inline constexpr uint64_t kOffRefcountTableClusters = 56;
inline constexpr uint64_t kOffNbSnapshots = 60;  // then snapshots_offset at 64
inline constexpr uint64_t kOffIncompatible = 72;
inline constexpr uint64_t kOffCompatible = 80;
inline constexpr uint64_t kOffAutoclear = 88;

// Feature bits.
inline constexpr uint64_t kIncompatDirty = 1u << 0;
inline constexpr uint64_t kIncompatCorrupt = 1u << 1;
inline constexpr uint64_t kIncompatDataFile = 1u << 2;
inline constexpr uint64_t kIncompatCompression = 1u << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1u << 4;
inline constexpr uint64_t kIncompatKnown = 0x1f;
inline constexpr uint64_t kCompatLazyRefcounts = 1u << 0;
inline constexpr uint64_t kAutoclearBitmaps = 1u << 0;
inline constexpr uint64_t kAutoclearDataFileRaw = 1u << 1;
inline constexpr uint64_t kAutoclearKnown = 0x3;

// Header extension types.
inline constexpr uint32_t kExtEnd = 0;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureTable = 0x6803f857;
inline constexpr uint32_t kExtBitmaps = 0x23852875;
inline constexpr uint32_t kExtCryptoHeader = 0x0537be77;
inline constexpr uint32_t kExtDataFile = 0x44415441;

// Table entries.
inline constexpr uint64_t kCopied = uint64_t{1} << 63;
inline constexpr uint64_t kCompressed = uint64_t{1} << 62;
inline constexpr uint64_t kZeroFlag = 1;
inline constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ULL;  // bits 9-55
inline constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffULL;
inline constexpr uint64_t kL2ReservedMask = 0x3f000000000001feULL;  // standard, not compressed
inline constexpr uint64_t kRefTableReservedMask = 0x1ffULL;

// Limits (QEMU's block/qcow2.h).
inline constexpr unsigned kMinClusterBits = 9;
inline constexpr unsigned kMaxClusterBits = 21;
inline constexpr uint64_t kMaxRefcountTableBytes = 8u << 20;
inline constexpr uint64_t kMaxL1Bytes = 32u << 20;
inline constexpr uint32_t kMaxSnapshots = 65536;
inline constexpr uint64_t kMaxSnapshotTableBytes = 64u << 20;
inline constexpr uint32_t kMaxBackingNameBytes = 1023;
inline constexpr uint64_t kMaxOffset = (uint64_t{1} << 56) - 1;  // what 56-bit table offsets reach
inline constexpr unsigned kSubclusters = 32;                    // with extended L2
inline constexpr uint64_t kAllSubclustersAllocated = 0x00000000ffffffffULL;
inline constexpr uint64_t kAllSubclustersZero = 0xffffffff00000000ULL;
inline constexpr uint32_t kSectorSize = 512;

// A compressed cluster's L2 entry holds the stream's byte offset and how many
// more 512-byte sectors it runs into; the split depends on the cluster size.
struct CompressedStream {
  uint64_t offset = 0;  // first byte of the stream
  uint64_t bytes = 0;   // from there to the end of its last sector
};

inline CompressedStream decode_compressed(uint64_t entry, unsigned cluster_bits) {
  const unsigned shift = 62 - (cluster_bits - 8);
  CompressedStream s;
  s.offset = entry & ((uint64_t{1} << shift) - 1);
  const uint64_t sectors = ((entry >> shift) & ((uint64_t{1} << (cluster_bits - 8)) - 1)) + 1;
  s.bytes = sectors * kSectorSize - s.offset % kSectorSize;
  return s;
}

inline uint64_t encode_compressed(uint64_t offset, uint64_t bytes, unsigned cluster_bits) {
  const unsigned shift = 62 - (cluster_bits - 8);
  const uint64_t sectors = (offset + bytes - 1) / kSectorSize - offset / kSectorSize + 1;
  return kCompressed | ((sectors - 1) << shift) | offset;
}

}  // namespace qcowkit::qcow2
