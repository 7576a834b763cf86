#include "formats/vmdk_layout.hpp"

#include <algorithm>
#include <cstring>
#include <random>

#include "util/endian_le.hpp"

namespace qcowkit::formats::vmdk {
namespace {

std::string sectors_text(uint64_t s) { return "sector " + std::to_string(s); }

// The header is in the footer when the directory offset says "at the end":
// a footer marker, the header, an end-of-stream marker, as the file's last
// three sectors.
Result<Header> read_header(BlockDevice& file) {
  const uint64_t size = file.info().size;
  if (size < 512)
    return make_error(EINVAL, "file of " + std::to_string(size) + " bytes is too small for a VMDK header");
  uint8_t b[512];
  QK_TRY(file.read(0, b));
  QK_ASSIGN_OR_RETURN(Header h, parse_header(b));
  if (h.gd_offset != kGdAtEnd) return h;
  if (size < 512 * 4) return make_error(EINVAL, "VMDK footer: the file is too small for one");
  uint8_t tail[1536];
  QK_TRY(file.read(size - sizeof tail, tail));
  if (load_le32(tail + 8) != 0 || load_le32(tail + 12) != kMarkerFooter ||
      load_le64(tail + 1024) != 0 || load_le32(tail + 1024 + 8) != 0 ||
      load_le32(tail + 1024 + 12) != kMarkerEndOfStream)
    return make_error(EINVAL, "VMDK footer: the footer or end-of-stream marker is missing");
  QK_ASSIGN_OR_RETURN(Header footer, parse_header(tail + 512));
  if (footer.gd_offset == kGdAtEnd)
    return make_error(EINVAL, "VMDK footer: the grain directory is still 'at the end'");
  return footer;
}

Status check_header(const Header& h, uint64_t file_size) {
  if (h.grain == 0 || (h.grain & (h.grain - 1)) || h.grain * 512 > kMaxGrainBytes)
    return make_error(EINVAL, "VMDK grain size " + std::to_string(h.grain) +
                                  " sectors is not a power of two up to 1 MiB");
  if (h.gt_entries != kGtEntries)
    return make_error(ENOTSUP, "VMDK grain tables of " + std::to_string(h.gt_entries) +
                                   " entries are not supported (512 are)");
  if ((h.flags & kFlagCompressed) && h.compress_algorithm != 1)
    return make_error(ENOTSUP, "VMDK compression algorithm " +
                                   std::to_string(h.compress_algorithm) + " is not supported (deflate is)");
  if (h.capacity > (uint64_t{1} << 40))
    return make_error(EINVAL, "VMDK capacity of " + std::to_string(h.capacity) + " sectors is out of range");
  if (h.descriptor_size > kMaxDescriptorBytes / 512 || h.descriptor_offset > file_size / 512 ||
      (file_size / 512 - h.descriptor_offset) < h.descriptor_size)
    return make_error(EINVAL, "VMDK embedded descriptor (" + sectors_text(h.descriptor_offset) +
                                  ", " + std::to_string(h.descriptor_size) +
                                  " sectors) is outside the file or over 1 MiB");
  return {};
}

// Sectors [start, start + count) of one structure, and what it is.
struct Span {
  uint64_t start, count;
  std::string what;
};

// Reads the redundant directory when the header promises one; an unusable
// one (outside the file, or naming a table outside it) is left unused.
std::vector<uint32_t> read_redundant_directory(BlockDevice& file, const Layout& l) {
  const Header& h = l.header;
  const uint64_t file_sectors = file.info().size / 512;
  const uint64_t gd_sectors = directory_sectors(h);
  if (!(h.flags & kFlagRedundantTable) || h.rgd_offset == 0 || h.rgd_offset > file_sectors ||
      file_sectors - h.rgd_offset < gd_sectors)
    return {};
  std::vector<uint8_t> raw(l.tables * 4);
  if (!file.read(h.rgd_offset * 512, raw).ok()) return {};
  std::vector<uint32_t> rgd(l.tables);
  for (uint64_t t = 0; t < l.tables; ++t) {
    rgd[t] = load_le32(raw.data() + t * 4);
    if (rgd[t] != 0 && (rgd[t] > file_sectors || file_sectors - rgd[t] < kTableSectors)) return {};
  }
  return rgd;
}

// See load_layout: metadata spans first (few), then every grain against
// them and against each other through a sorted copy of the grain entries.
Status check_no_overlaps(const Layout& l, const std::vector<uint64_t>* grains_past_eof,
                         uint64_t file_size) {
  const Header& h = l.header;
  const uint64_t gd_sectors = directory_sectors(h);
  std::vector<Span> meta{{0, 1, "the header"}, {h.gd_offset, gd_sectors, "the grain directory"}};
  if (h.descriptor_size) meta.push_back({h.descriptor_offset, h.descriptor_size, "the descriptor"});
  if (!l.rgd.empty()) meta.push_back({h.rgd_offset, gd_sectors, "the redundant grain directory"});
  for (uint64_t t = 0; t < l.tables; ++t) {
    if (l.gd[t]) meta.push_back({l.gd[t], kTableSectors, "grain table " + std::to_string(t)});
    if (!l.rgd.empty() && l.rgd[t])
      meta.push_back({l.rgd[t], kTableSectors, "redundant grain table " + std::to_string(t)});
  }
  std::sort(meta.begin(), meta.end(), [](const Span& a, const Span& b) { return a.start < b.start; });
  for (size_t k = 1; k < meta.size(); ++k)
    if (meta[k].start < meta[k - 1].start + meta[k - 1].count)
      return make_error(EINVAL, "VMDK " + meta[k - 1].what + " and " + meta[k].what +
                                    " overlap in the file (" + sectors_text(meta[k].start) + ")");
  const bool zero_grains = h.flags & kFlagZeroGrain;
  const uint64_t file_sectors = file_size / 512;
  std::vector<uint32_t> sorted;
  // Entries past the disk's last grain (the tail of the last table) are
  // never read or written.
  for (uint64_t g = 0; g < l.grains; ++g) {
    const uint32_t e = l.gt[g];
    if (e != 0 && !(e == 1 && zero_grains) && (!grains_past_eof || e < file_sectors)) sorted.push_back(e);
  }
  std::sort(sorted.begin(), sorted.end());
  auto grain_at = [&](uint32_t sector) {
    return std::to_string(std::find(l.gt.begin(), l.gt.begin() + l.grains, sector) - l.gt.begin());
  };
  size_t m = 0;
  for (size_t k = 0; k < sorted.size(); ++k) {
    const uint64_t start = sorted[k];
    if (k > 0 && start < uint64_t{sorted[k - 1]} + h.grain)
      return make_error(EINVAL, "VMDK grains " + grain_at(sorted[k - 1]) + " and " + grain_at(sorted[k]) +
                                    " overlap in the file (" + sectors_text(start) + ")");
    // meta is sorted and disjoint: advance past the spans that end before it.
    while (m < meta.size() && meta[m].start + meta[m].count <= start) ++m;
    if (m < meta.size() && meta[m].start < start + h.grain)
      return make_error(EINVAL, "VMDK grain " + grain_at(sorted[k]) + " at " + sectors_text(start) +
                                    " overlaps " + meta[m].what);
  }
  return {};
}

}  // namespace

uint64_t directory_sectors(const Header& h) {
  const uint64_t grains = (h.capacity + h.grain - 1) / h.grain;
  const uint64_t tables = (grains + kGtEntries - 1) / kGtEntries;
  return (tables * 4 + 511) / 512;
}

Result<Layout> load_layout(BlockDevice& file, bool part_of_descriptor,
                           std::vector<uint64_t>* grains_past_eof) {
  const uint64_t file_size = file.info().size;
  Layout l;
  QK_ASSIGN_OR_RETURN(l.header, read_header(file));
  const Header& h = l.header;
  QK_TRY(check_header(h, file_size));
  // An extent of a descriptor file (twoGbMaxExtentSparse) may carry no
  // descriptor of its own; what it carries then says nothing about it.
  if (h.descriptor_size == 0 && !part_of_descriptor)
    return make_error(EINVAL, "VMDK sparse extent has no embedded descriptor");
  if (h.descriptor_size != 0 && !part_of_descriptor) {
    std::string text(h.descriptor_size * 512, '\0');
    QK_TRY(file.read(h.descriptor_offset * 512,
                     ByteSpan(reinterpret_cast<uint8_t*>(text.data()), text.size())));
    text.resize(std::min(text.size(), text.find('\0')));
    QK_ASSIGN_OR_RETURN(l.descriptor, parse_descriptor(text));
    const Descriptor& d = l.descriptor;
    if (d.has_parent || d.parent_cid != 0xffffffff)
      return make_error(ENOTSUP, "differencing VMDK images (with a parent) are not supported");
    if (d.create_type != "monolithicSparse" && d.create_type != "streamOptimized")
      return make_error(ENOTSUP, "VMDK create type '" + d.create_type +
                                     "' is not supported in a sparse extent (monolithicSparse and "
                                     "streamOptimized are)");
    if (d.sparse_extents != 1 || d.other_extents != 0)
      return make_error(ENOTSUP, "VMDK descriptor names " +
                                     std::to_string(d.sparse_extents + d.other_extents) +
                                     " extents; only one sparse extent, this file, is supported");
  }

  l.grain_bytes = h.grain * 512;
  l.grains = (h.capacity + h.grain - 1) / h.grain;
  l.tables = (l.grains + kGtEntries - 1) / kGtEntries;
  if (l.tables * kGtEntries * 4 > kMaxTableBytes)
    return make_error(EFBIG, "VMDK grain tables of " + std::to_string(l.tables * kGtEntries * 4) +
                                 " bytes are over the " + std::to_string(kMaxTableBytes >> 20) +
                                 " MiB limit");
  const uint64_t gd_bytes = l.tables * 4;
  if (h.gd_offset > file_size / 512 || file_size - h.gd_offset * 512 < gd_bytes)
    return make_error(EINVAL, "VMDK grain directory at " + sectors_text(h.gd_offset) +
                                  " is outside the file");
  std::vector<uint8_t> raw(gd_bytes);
  QK_TRY(file.read(h.gd_offset * 512, raw));
  l.gd.resize(l.tables);
  l.gt.assign(l.tables * kGtEntries, 0);
  std::vector<uint8_t> table(kGtEntries * 4);
  for (uint64_t t = 0; t < l.tables; ++t) {
    l.gd[t] = load_le32(raw.data() + t * 4);
    if (l.gd[t] == 0) continue;
    const uint64_t at = uint64_t{l.gd[t]} * 512;
    if (l.gd[t] < 1 || at > file_size || file_size - at < table.size())
      return make_error(EINVAL, "VMDK grain table " + std::to_string(t) + " at " +
                                    sectors_text(l.gd[t]) + " is outside the file");
    QK_TRY(file.read(at, table));
    for (uint32_t i = 0; i < kGtEntries; ++i) l.gt[t * kGtEntries + i] = load_le32(table.data() + i * 4);
  }
  // Every grain inside the file (a compressed grain at least its marker).
  const bool compressed = h.flags & kFlagCompressed;
  const bool zero_grains = h.flags & kFlagZeroGrain;
  const uint64_t need = compressed ? 12 : l.grain_bytes;
  for (uint64_t g = 0; g < l.grains; ++g) {
    const uint32_t e = l.gt[g];
    if (e == 0 || (e == 1 && zero_grains)) continue;
    const uint64_t at = uint64_t{e} * 512;
    if (at > file_size || file_size - at < need) {
      // qemu-img check counts a grain that starts at or past the end.
      if (grains_past_eof) {
        if (at >= file_size) grains_past_eof->push_back(g);
        continue;
      }
      return make_error(EINVAL, "VMDK grain " + std::to_string(g) + " at " + sectors_text(e) +
                                    " points past the end of the file");
    }
  }
  l.rgd = read_redundant_directory(file, l);
  // A compressed extent is read-only and its grains vary in length.
  if (!compressed) QK_TRY(check_no_overlaps(l, grains_past_eof, file_size));
  return l;
}

Header new_header(uint64_t size, bool compressed) {
  Header h;
  h.version = compressed ? 3 : 1;
  h.flags = kFlagNewlineTest | kFlagRedundantTable | (compressed ? kFlagCompressed | kFlagMarkers : 0);
  h.capacity = (size + 511) / 512;
  h.grain = 128;  // 64 KiB, as qemu-img
  h.descriptor_offset = 1;
  h.descriptor_size = 20;
  h.gt_entries = kGtEntries;
  const uint64_t grains = (h.capacity + h.grain - 1) / h.grain;
  const uint64_t tables = (grains + kGtEntries - 1) / kGtEntries;
  const uint64_t gd_sectors = directory_sectors(h);
  h.rgd_offset = h.descriptor_offset + h.descriptor_size;
  h.gd_offset = h.rgd_offset + gd_sectors + tables * kTableSectors;
  const uint64_t end = h.gd_offset + gd_sectors + tables * kTableSectors;
  h.overhead = (end + h.grain - 1) / h.grain * h.grain;
  h.compress_algorithm = compressed ? 1 : 0;
  return h;
}

Status write_new_image(BlockDevice& file, const Header& h, const std::string& create_type,
                       const std::string& file_name) {
  const uint64_t grains = (h.capacity + h.grain - 1) / h.grain;
  const uint64_t tables = (grains + kGtEntries - 1) / kGtEntries;
  if (tables * kGtEntries * 4 > kMaxTableBytes || h.gd_offset > UINT32_MAX / 2)
    return make_error(EFBIG, "VMDK images are at most " +
                                 std::to_string((kMaxTableBytes / 4) * 65536 >> 40) +
                                 " TiB here; " + std::to_string(h.capacity * 512) + " bytes asked for");
  QK_TRY(file.resize(h.overhead * 512));
  uint8_t header[512];
  build_header(h, header);
  QK_TRY(file.write(0, header));
  std::random_device random;
  const std::string text = build_descriptor(create_type, h.capacity, file_name, random());
  std::vector<uint8_t> descriptor(h.descriptor_size * 512, 0);
  std::memcpy(descriptor.data(), text.data(), std::min(text.size(), descriptor.size()));
  QK_TRY(file.write(h.descriptor_offset * 512, descriptor));
  // Both directories name their (zeroed) tables, laid out right after them.
  const uint64_t gd_sectors = directory_sectors(h);
  for (uint64_t dir : {h.rgd_offset, h.gd_offset}) {
    std::vector<uint8_t> gd(gd_sectors * 512, 0);
    for (uint64_t t = 0; t < tables; ++t)
      store_le32(&gd[t * 4], uint32_t(dir + gd_sectors + t * kTableSectors));
    QK_TRY(file.write(dir * 512, gd));
  }
  return {};
}

}  // namespace qcowkit::formats::vmdk
