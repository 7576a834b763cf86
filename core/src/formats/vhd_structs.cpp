#include "formats/vhd_structs.hpp"

#include <cstring>
#include <ctime>
#include <random>

#include "util/endian.hpp"

namespace qcowkit::formats::vhd {
namespace {

// Footer field offsets.
constexpr size_t kFeatures = 8, kVersion = 12, kDataOffset = 16, kTimestamp = 24,
                 kCreatorApp = 28, kCreatorVersion = 32, kCreatorOs = 36, kOriginalSize = 40,
                 kCurrentSize = 48, kCylinders = 56, kHeads = 58, kSectors = 59, kType = 60,
                 kChecksum = 64, kUuid = 68;
// Sparse header field offsets.
constexpr size_t kSparseDataOffset = 8, kTableOffset = 16, kHeaderVersion = 24,
                 kMaxTableEntries = 28, kBlockSize = 32, kSparseChecksum = 36;
// Seconds from the Unix epoch to VHD's (2000-01-01 00:00 UTC).
constexpr uint64_t kVhdEpoch = 946684800;

std::string hex32(uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

}  // namespace

uint32_t checksum(const uint8_t* bytes, size_t size, size_t checksum_at) {
  uint32_t sum = 0;
  for (size_t i = 0; i < size; ++i)
    if (i < checksum_at || i >= checksum_at + 4) sum += bytes[i];
  return ~sum;
}

bool has_footer_cookie(const uint8_t* bytes) { return std::memcmp(bytes, "conectix", 8) == 0; }

Result<Footer> parse_footer(const uint8_t* b, const char* where) {
  if (!has_footer_cookie(b))
    return make_error(EINVAL, std::string("no VHD footer (cookie 'conectix') ") + where);
  const uint32_t stored = load_be32(b + kChecksum);
  const uint32_t computed = checksum(b, kFooterSize, kChecksum);
  if (stored != computed)
    return make_error(EINVAL, std::string("VHD footer ") + where + ": bad checksum (stored " +
                                  hex32(stored) + ", computed " + hex32(computed) + ")");
  Footer f;
  f.data_offset = load_be64(b + kDataOffset);
  std::memcpy(f.creator_app.data(), b + kCreatorApp, 4);
  f.original_size = load_be64(b + kOriginalSize);
  f.current_size = load_be64(b + kCurrentSize);
  f.cylinders = load_be16(b + kCylinders);
  f.heads = b[kHeads];
  f.sectors = b[kSectors];
  f.type = load_be32(b + kType);
  return f;
}

Result<SparseHeader> parse_sparse_header(const uint8_t* b) {
  if (std::memcmp(b, "cxsparse", 8) != 0)
    return make_error(EINVAL, "VHD sparse header: bad cookie (expected 'cxsparse')");
  const uint32_t stored = load_be32(b + kSparseChecksum);
  const uint32_t computed = checksum(b, kSparseHeaderSize, kSparseChecksum);
  if (stored != computed)
    return make_error(EINVAL, "VHD sparse header: bad checksum (stored " + hex32(stored) +
                                  ", computed " + hex32(computed) + ")");
  SparseHeader h;
  h.table_offset = load_be64(b + kTableOffset);
  h.max_table_entries = load_be32(b + kMaxTableEntries);
  h.block_size = load_be32(b + kBlockSize);
  // The parent's name at 64 (512 bytes, UTF-16BE); 8 locators of 24 bytes
  // at 576: platform code, data space, data length, reserved, data offset.
  h.parent_name = utf16_to_utf8(b + 64, 512, true);
  for (size_t i = 0; i < h.locators.size(); ++i) {
    const uint8_t* e = b + 576 + i * 24;
    h.locators[i].platform = load_be32(e);
    h.locators[i].data_length = load_be32(e + 8);
    h.locators[i].data_offset = load_be64(e + 16);
  }
  return h;
}

std::string utf16_to_utf8(const uint8_t* b, size_t size, bool big_endian) {
  std::string out;
  auto unit = [&](size_t i) -> uint32_t {
    return big_endian ? uint32_t(b[i] << 8 | b[i + 1]) : uint32_t(b[i + 1] << 8 | b[i]);
  };
  for (size_t i = 0; i + 1 < size; i += 2) {
    uint32_t c = unit(i);
    if (c == 0) break;
    if (c >= 0xd800 && c < 0xdc00 && i + 3 < size && unit(i + 2) >= 0xdc00 && unit(i + 2) < 0xe000) {
      c = 0x10000 + ((c - 0xd800) << 10) + (unit(i + 2) - 0xdc00);
      i += 2;
    } else if (c >= 0xd800 && c < 0xe000) {
      c = 0xfffd;
    }
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xc0 | c >> 6);
      out += char(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out += char(0xe0 | c >> 12);
      out += char(0x80 | (c >> 6 & 0x3f));
      out += char(0x80 | (c & 0x3f));
    } else {
      out += char(0xf0 | c >> 18);
      out += char(0x80 | (c >> 12 & 0x3f));
      out += char(0x80 | (c >> 6 & 0x3f));
      out += char(0x80 | (c & 0x3f));
    }
  }
  return out;
}

uint64_t virtual_size(const Footer& f) {
  const uint64_t chs = uint64_t{f.cylinders} * f.heads * f.sectors;
  // Creators that size disks by the footer's current size, not the geometry.
  static const char* const kBySize[] = {"win ", "qem2", "d2v ", "CTXS"};
  bool by_size = std::memcmp(f.creator_app.data(), "tap\0", 4) == 0;
  for (const char* app : kBySize) by_size |= std::memcmp(f.creator_app.data(), app, 4) == 0;
  if (by_size || chs == kMaxGeometry) return f.current_size / 512 * 512;
  return chs * 512;
}

std::array<uint8_t, kFooterSize> build_footer(const Footer& f) {
  std::array<uint8_t, kFooterSize> b{};
  std::memcpy(b.data(), "conectix", 8);
  store_be32(b.data() + kFeatures, 2);  // "reserved", which the specification says is always set
  store_be32(b.data() + kVersion, 0x00010000);
  store_be64(b.data() + kDataOffset, f.data_offset);
  store_be32(b.data() + kTimestamp, uint32_t(uint64_t(std::time(nullptr)) - kVhdEpoch));
  std::memcpy(b.data() + kCreatorApp, f.creator_app.data(), 4);
  store_be32(b.data() + kCreatorVersion, 0x00050003);  // as qemu-img: Virtual PC 2007
  std::memcpy(b.data() + kCreatorOs, "Wi2k", 4);
  store_be64(b.data() + kOriginalSize, f.original_size);
  store_be64(b.data() + kCurrentSize, f.current_size);
  store_be16(b.data() + kCylinders, f.cylinders);
  b[kHeads] = f.heads;
  b[kSectors] = f.sectors;
  store_be32(b.data() + kType, f.type);
  std::random_device random;
  for (size_t i = 0; i < 16; i += 4) store_be32(b.data() + kUuid + i, random());
  b[kUuid + 6] = uint8_t((b[kUuid + 6] & 0x0f) | 0x40);  // a version 4 (random) UUID
  b[kUuid + 8] = uint8_t((b[kUuid + 8] & 0x3f) | 0x80);
  store_be32(b.data() + kChecksum, checksum(b.data(), b.size(), kChecksum));
  return b;
}

std::array<uint8_t, kSparseHeaderSize> build_sparse_header(const SparseHeader& h) {
  std::array<uint8_t, kSparseHeaderSize> b{};
  std::memcpy(b.data(), "cxsparse", 8);
  store_be64(b.data() + kSparseDataOffset, ~uint64_t{0});  // no further header
  store_be64(b.data() + kTableOffset, h.table_offset);
  store_be32(b.data() + kHeaderVersion, 0x00010000);
  store_be32(b.data() + kMaxTableEntries, h.max_table_entries);
  store_be32(b.data() + kBlockSize, h.block_size);
  store_be32(b.data() + kSparseChecksum, checksum(b.data(), b.size(), kSparseChecksum));
  return b;
}

VhdGeometry chs_for(uint64_t total) {
  total = std::min(total, kMaxGeometry);
  uint64_t sectors, heads, cylinders_times_heads;
  if (total >= 65535ull * 16 * 63) {
    sectors = 255;
    heads = 16;
    cylinders_times_heads = total / sectors;
  } else {
    sectors = 17;
    cylinders_times_heads = total / sectors;
    heads = std::max<uint64_t>((cylinders_times_heads + 1023) / 1024, 4);
    if (cylinders_times_heads >= heads * 1024 || heads > 16) {
      sectors = 31;
      heads = 16;
      cylinders_times_heads = total / sectors;
    }
    if (cylinders_times_heads >= heads * 1024) {
      sectors = 63;
      heads = 16;
      cylinders_times_heads = total / sectors;
    }
  }
  VhdGeometry g;
  g.cylinders = uint16_t(cylinders_times_heads / heads);
  g.heads = uint8_t(heads);
  g.sectors = uint8_t(sectors);
  g.size = uint64_t{g.cylinders} * g.heads * g.sectors * 512;
  return g;
}

}  // namespace qcowkit::formats::vhd

namespace qcowkit {

Result<VhdGeometry> vhd_size_for(uint64_t size, bool force_size) {
  using namespace formats::vhd;
  if (size > kMaxSectors * 512)
    return make_error(EFBIG, "VHD images are at most 2040 GiB; " + std::to_string(size) +
                                 " bytes asked for");
  size = (size + 511) / 512 * 512;  // whole sectors, as qemu-img rounds
  VhdGeometry g;
  if (force_size) {
    g = VhdGeometry{65535, 16, 255, 0};
    g.size = size;
  } else {
    // The smallest geometry at least as large as asked (qemu-img rounds up
    // so a conversion never truncates); the CHS maximum means "by size".
    const uint64_t wanted = std::min(kMaxGeometry, size / 512);
    for (uint64_t extra = 0;; ++extra) {
      g = chs_for(wanted + extra);
      if (g.size / 512 >= wanted) break;
    }
    if (uint64_t{g.cylinders} * g.heads * g.sectors == kMaxGeometry) g.size = size;
  }
  if (g.size / 512 > kMaxSectors)
    return make_error(EFBIG, "VHD images are at most 2040 GiB; " + std::to_string(size) +
                                 " bytes asked for");
  return g;
}

}  // namespace qcowkit
