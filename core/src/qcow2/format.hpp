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

}  // namespace qcowkit::qcow2
