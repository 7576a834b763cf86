// VHDX checksums, GUIDs and headers.
#include "formats/vhdx_structs.hpp"

#include <cstring>
#include <random>

#include "qcowkit/vhdx.hpp"
#include "util/endian_le.hpp"

namespace qcowkit {

namespace {

struct Crc32cTable {
  uint32_t t[256];
  Crc32cTable() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
  }
};

uint32_t crc32c_update(uint32_t crc, const uint8_t* p, size_t n) {
  static const Crc32cTable table;
  for (size_t i = 0; i < n; ++i) crc = table.t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

// The CRC with the stored checksum's 4 bytes counted as zeroes.
uint32_t crc_skipping(const uint8_t* data, size_t size, size_t crc_at) {
  static const uint8_t zeroes[4] = {};
  uint32_t crc = crc32c_update(0xffffffffu, data, crc_at);
  crc = crc32c_update(crc, zeroes, 4);
  crc = crc32c_update(crc, data + crc_at + 4, size - crc_at - 4);
  return crc ^ 0xffffffffu;
}

}  // namespace

uint32_t vhdx_crc32c(const uint8_t* data, size_t size) {
  return crc32c_update(0xffffffffu, data, size) ^ 0xffffffffu;
}

uint32_t vhdx_default_block_size(uint64_t size) {
  // qemu-img's choice, to keep the BAT small: larger disks, larger blocks.
  if (size > (32ull << 40)) return 64u << 20;
  if (size > (100ull << 30)) return 32u << 20;
  if (size > (1ull << 30)) return 16u << 20;
  return 8u << 20;
}

namespace formats::vhdx {

Guid make_guid(uint32_t d1, uint16_t d2, uint16_t d3, std::array<uint8_t, 8> d4) {
  Guid g{};
  store_le32(g.data(), d1);
  store_le16(g.data() + 4, d2);
  store_le16(g.data() + 6, d3);
  std::memcpy(g.data() + 8, d4.data(), 8);
  return g;
}

Guid random_guid() {
  std::random_device random;
  Guid g{};
  for (size_t i = 0; i < 16; i += 4) store_le32(g.data() + i, random());
  g[7] = uint8_t((g[7] & 0x0f) | 0x40);  // version 4 (random), in the stored byte order
  g[8] = uint8_t((g[8] & 0x3f) | 0x80);
  return g;
}

bool is_zero_guid(const Guid& g) {
  for (uint8_t b : g)
    if (b) return false;
  return true;
}

const Guid kBatRegion =
    make_guid(0x2dc27766, 0xf623, 0x4200, {0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08});
const Guid kMetadataRegion =
    make_guid(0x8b7ca206, 0x4790, 0x4b9a, {0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e});
const Guid kFileParameters =
    make_guid(0xcaa16737, 0xfa36, 0x4d43, {0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b});
const Guid kVirtualDiskSize =
    make_guid(0x2fa54224, 0xcd1b, 0x4876, {0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8});
const Guid kPage83 =
    make_guid(0xbeca12ab, 0xb2e6, 0x4523, {0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46});
const Guid kLogicalSectorSize =
    make_guid(0x8141bf1d, 0xa96f, 0x4709, {0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f});
const Guid kPhysicalSectorSize =
    make_guid(0xcda348c7, 0x445d, 0x4471, {0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56});
const Guid kParentLocator =
    make_guid(0xa8d35f2d, 0xb30b, 0x454d, {0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c});

bool checksum_ok(const uint8_t* data, size_t size, size_t crc_at) {
  return crc_skipping(data, size, crc_at) == load_le32(data + crc_at);
}

void store_checksum(uint8_t* data, size_t size, size_t crc_at) {
  store_le32(data + crc_at, crc_skipping(data, size, crc_at));
}

std::array<uint8_t, kHeaderSize> build_header(const Header& h) {
  std::array<uint8_t, kHeaderSize> b{};
  store_le32(&b[0], kHeadSig);
  store_le64(&b[8], h.sequence);
  std::memcpy(&b[16], h.file_write.data(), 16);
  std::memcpy(&b[32], h.data_write.data(), 16);
  std::memcpy(&b[48], h.log.data(), 16);
  store_le16(&b[64], h.log_version);
  store_le16(&b[66], h.version);
  store_le32(&b[68], h.log_length);
  store_le64(&b[72], h.log_offset);
  store_checksum(b.data(), b.size(), 4);
  return b;
}

Result<int> write_next_header(BlockDevice& file, Header h, int current) {
  const int next = current == 0 ? 1 : 0;
  QK_TRY(file.write(next == 0 ? kHeader1At : kHeader2At, build_header(h)));
  QK_TRY(file.flush());
  return next;
}

}  // namespace formats::vhdx
}  // namespace qcowkit
