#include "qcow2/bitmaps.hpp"

#include <algorithm>

#include "qcow2/format.hpp"
#include "util/endian.hpp"

namespace qcowkit::qcow2 {

namespace {

Error invalid(const std::string& what) {
  return make_error(EINVAL, "invalid qcow2 bitmap directory: " + what);
}

}  // namespace

Result<BitmapDirectory> read_bitmap_directory(BlockDevice& file, const Header& h) {
  BitmapDirectory dir;
  if (!h.bitmaps) return dir;
  const BitmapsExtension& ext = *h.bitmaps;
  const uint64_t file_size = file.info().size;
  if (ext.directory_offset >= file_size || ext.directory_size > file_size - ext.directory_offset)
    return invalid("it lies outside the file");
  std::vector<uint8_t> buf(ext.directory_size);
  QK_TRY(file.read(ext.directory_offset, buf));
  uint64_t pos = 0;
  for (uint32_t i = 0; i < ext.nb_bitmaps; ++i) {
    if (pos + 24 > buf.size()) return invalid("entry " + std::to_string(i) + " is truncated");
    const uint8_t* p = buf.data() + pos;
    BitmapEntry e;
    e.table_offset = load_be64(p);
    e.table_size = load_be32(p + 8);
    e.info.flags = load_be32(p + 12);
    e.type = p[16];
    e.info.granularity_bits = p[17];
    e.directory_position = pos;
    const uint16_t name_size = load_be16(p + 18);
    const uint32_t extra_size = load_be32(p + 20);
    const uint64_t entry_size = 24 + uint64_t{extra_size} + name_size;
    if (pos + entry_size > buf.size()) return invalid("entry " + std::to_string(i) + " is truncated");
    e.extra_size = extra_size;
    e.extra.assign(p + 24, p + 24 + extra_size);
    e.info.name.assign(reinterpret_cast<const char*>(p + 24 + extra_size), name_size);
    if (e.table_offset % h.cluster_size() != 0 || e.table_offset > kMaxOffset ||
        uint64_t{e.table_size} * 8 > (64u << 20))
      return invalid("bitmap " + e.info.name + " has an invalid table");
    dir.entries.push_back(std::move(e));
    pos += (entry_size + 7) & ~uint64_t{7};
  }
  return dir;
}

std::vector<uint8_t> encode_bitmap_directory(std::vector<BitmapEntry>& entries) {
  std::vector<uint8_t> out;
  for (BitmapEntry& e : entries) {
    e.directory_position = out.size();
    e.extra_size = static_cast<uint32_t>(e.extra.size());
    const uint64_t size = 24 + e.extra.size() + e.info.name.size();
    out.resize(out.size() + ((size + 7) & ~uint64_t{7}), 0);
    uint8_t* p = out.data() + e.directory_position;
    store_be64(p, e.table_offset);
    store_be32(p + 8, e.table_size);
    store_be32(p + 12, e.info.flags);
    p[16] = e.type;
    p[17] = static_cast<uint8_t>(e.info.granularity_bits);
    store_be16(p + 18, static_cast<uint16_t>(e.info.name.size()));
    store_be32(p + 20, e.extra_size);
    std::copy(e.extra.begin(), e.extra.end(), p + 24);
    std::copy(e.info.name.begin(), e.info.name.end(), p + 24 + e.extra.size());
  }
  return out;
}

uint64_t bitmap_table_entries(uint64_t virtual_size, unsigned granularity_bits,
                              uint64_t cluster_size) {
  const uint64_t granule = uint64_t{1} << granularity_bits;
  const uint64_t bits = virtual_size / granule + (virtual_size % granule != 0);
  const uint64_t bits_per_cluster = cluster_size * 8;
  return bits / bits_per_cluster + (bits % bits_per_cluster != 0);
}

Result<std::vector<uint64_t>> bitmap_clusters(BlockDevice& file, const Header& h,
                                              const BitmapEntry& bitmap) {
  std::vector<uint64_t> clusters;
  const uint64_t bytes = uint64_t{bitmap.table_size} * 8;
  if (bytes == 0) return clusters;
  const uint64_t file_size = file.info().size;
  if (bitmap.table_offset >= file_size || bytes > file_size - bitmap.table_offset)
    return invalid("bitmap " + bitmap.info.name + " table lies outside the file");
  for (uint64_t off = 0; off < bytes; off += h.cluster_size())
    clusters.push_back(bitmap.table_offset + off);
  std::vector<uint8_t> table(bytes);
  QK_TRY(file.read(bitmap.table_offset, table));
  for (uint64_t i = 0; i < bitmap.table_size; ++i) {
    const uint64_t entry = load_be64(table.data() + i * 8);
    const uint64_t offset = entry & kOffsetMask;
    if (offset != 0) clusters.push_back(offset);
  }
  return clusters;
}

}  // namespace qcowkit::qcow2
