#include "qcow2/header.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include "qcow2/format.hpp"
#include "util/hex.hpp"
#include "util/endian.hpp"

namespace qcowkit::qcow2 {

namespace {

Error invalid(const std::string& what) {
  return make_error(EINVAL, "invalid qcow2 header: " + what);
}

Error unsupported(const std::string& what) { return make_error(ENOTSUP, what); }

uint64_t round_up8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }


// A table [offset, offset + bytes) must be cluster aligned and addressable.
Status check_table(const char* name, uint64_t offset, uint64_t bytes, uint64_t cluster_size) {
  if (offset % cluster_size != 0)
    return invalid(std::string(name) + " offset " + hex(offset) + " is not cluster aligned");
  if (offset > kMaxOffset || bytes > kMaxOffset - offset)
    return invalid(std::string(name) + " at " + hex(offset) + " reaches past the largest offset");
  return {};
}

struct Interval {
  const char* name;
  uint64_t start, end;
};

Status parse_extensions(Header& h, ConstByteSpan buf, uint64_t start, uint64_t end) {
  std::set<uint32_t> seen;
  uint64_t pos = start;
  while (true) {
    if (pos + 8 > end)
      return invalid("header extensions run past the end of the first cluster");
    const uint32_t type = load_be32(buf.data() + pos);
    const uint32_t length = load_be32(buf.data() + pos + 4);
    if (type == kExtEnd) break;
    const uint64_t data_start = pos + 8;
    if (length > end - data_start)
      return invalid("header extension " + hex(type) + " claims " + std::to_string(length) +
                     " bytes, past the end of the first cluster");
    const uint8_t* data = buf.data() + data_start;
    const bool known = type == kExtBackingFormat || type == kExtFeatureTable ||
                       type == kExtBitmaps || type == kExtCryptoHeader || type == kExtDataFile;
    if (known && !seen.insert(type).second)
      return invalid("header extension " + hex(type) + " appears twice");
    switch (type) {
      case kExtBackingFormat:
        h.backing_format.assign(reinterpret_cast<const char*>(data), length);
        break;
      case kExtDataFile:
        h.data_file.assign(reinterpret_cast<const char*>(data), length);
        break;
      case kExtCryptoHeader:
        return unsupported("encrypted qcow2 images are not supported (crypto header present)");
      case kExtBitmaps: {
        if (length < 24) return invalid("bitmaps extension is too short");
        BitmapsExtension b;
        b.nb_bitmaps = load_be32(data);
        if (load_be32(data + 4) != 0) return invalid("bitmaps extension reserved field is set");
        b.directory_size = load_be64(data + 8);
        b.directory_offset = load_be64(data + 16);
        if (b.nb_bitmaps == 0 || b.nb_bitmaps > 65535)
          return invalid("bitmaps extension has " + std::to_string(b.nb_bitmaps) + " bitmaps");
        if (b.directory_size > (64u << 20)) return invalid("bitmap directory is too large");
        QK_TRY(check_table("bitmap directory", b.directory_offset, b.directory_size,
                           h.cluster_size()));
        h.bitmaps = b;
        break;
      }
      default:
        break;
    }
    h.extensions.push_back(HeaderExtension{type, std::vector<uint8_t>(data, data + length)});
    pos = data_start + round_up8(length);
  }
  return {};
}

}  // namespace

bool Header::extended_l2() const { return (incompatible_features & kIncompatExtendedL2) != 0; }

uint64_t Header::l1_entries_for(uint64_t virtual_size) const {
  const uint64_t per_l2 = l2_entries() * cluster_size();
  return virtual_size / per_l2 + (virtual_size % per_l2 != 0);
}

RefcountLayout refcount_layout_for(uint64_t other_clusters, uint64_t cluster_size, unsigned refcount_bits) {
  const uint64_t per_block = cluster_size * 8 / refcount_bits;
  RefcountLayout r;
  // The blocks count themselves and the table: the counts only grow, so a
  // few rounds reach the fixed point.
  for (int i = 0; i < 64; ++i) {
    const uint64_t total = other_clusters + r.table_clusters + r.blocks;
    const uint64_t blocks = std::max(r.blocks, (total + per_block - 1) / per_block);
    const uint64_t table = std::max(r.table_clusters, (blocks * 8 + cluster_size - 1) / cluster_size);
    if (blocks == r.blocks && table == r.table_clusters) break;
    r.blocks = blocks;
    r.table_clusters = table;
  }
  return r;
}

uint64_t needed_prefix(ConstByteSpan first, uint64_t file_size) {
  uint64_t cluster = 1u << kMaxClusterBits;
  if (first.size() >= 24) {
    const uint32_t bits = load_be32(first.data() + 20);
    if (bits >= kMinClusterBits && bits <= kMaxClusterBits) cluster = uint64_t{1} << bits;
  }
  return std::min(cluster, file_size);
}

Result<Header> parse_header(ConstByteSpan buf, uint64_t file_size) {
  if (buf.size() < kV2HeaderLength)
    return invalid("the file is too small to be a qcow2 image (" + std::to_string(file_size) +
                   " bytes)");
  const uint8_t* p = buf.data();
  if (load_be32(p) != kMagic) return make_error(EINVAL, "not a qcow2 image (bad magic)");
  Header h;
  h.version = load_be32(p + 4);
  if (h.version != 2 && h.version != 3)
    return unsupported("qcow2 version " + std::to_string(h.version) + " is not supported");
  h.backing_file_offset = load_be64(p + 8);
  h.backing_file_size = load_be32(p + 16);
  h.cluster_bits = load_be32(p + 20);
  h.size = load_be64(p + 24);
  h.crypt_method = load_be32(p + 32);
  h.l1_size = load_be32(p + 36);
  h.l1_table_offset = load_be64(p + 40);
  h.refcount_table_offset = load_be64(p + 48);
  h.refcount_table_clusters = load_be32(p + 56);
  h.nb_snapshots = load_be32(p + 60);
  h.snapshots_offset = load_be64(p + 64);

  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
    return invalid("cluster_bits " + std::to_string(h.cluster_bits) + " is outside 9..21");
  const uint64_t cs = h.cluster_size();

  if (h.version == 2) {
    h.header_length = kV2HeaderLength;
    h.refcount_order = 4;
  } else {
    if (buf.size() < kV3MinHeaderLength) return invalid("version 3 header is truncated");
    h.incompatible_features = load_be64(p + 72);
    h.compatible_features = load_be64(p + 80);
    h.autoclear_features = load_be64(p + 88);
    h.refcount_order = load_be32(p + 96);
    h.header_length = load_be32(p + 100);
    if (h.header_length < kV3MinHeaderLength || h.header_length % 8 != 0 ||
        h.header_length > cs)
      return invalid("header_length " + std::to_string(h.header_length) + " is not valid");
    if (h.header_length > buf.size()) return invalid("header_length runs past the end of file");
    if (h.header_length > kV3MinHeaderLength) h.compression_type = p[104];
  }

  if (h.crypt_method != 0)
    return unsupported("encrypted qcow2 images are not supported (crypt_method " +
                       std::to_string(h.crypt_method) + ")");
  if (const uint64_t unknown = h.incompatible_features & ~kIncompatKnown)
    return unsupported("qcow2 image uses unknown incompatible features " + hex(unknown));
  if (h.refcount_order > 6)
    return invalid("refcount_order " + std::to_string(h.refcount_order) + " is above 6");
  const bool compression_bit = (h.incompatible_features & kIncompatCompression) != 0;
  if (compression_bit != (h.compression_type != 0))
    return invalid("the compression type bit and the compression_type field disagree");
  if (h.compression_type > 1)
    return unsupported("compression type " + std::to_string(h.compression_type) +
                       " is not supported");
  if (h.extended_l2() && h.cluster_bits < 14)
    return invalid("extended L2 entries need clusters of at least 16 KiB");

  // Virtual size and the L1 table that must cover it.
  if (h.size > static_cast<uint64_t>(INT64_MAX))
    return invalid("virtual size " + std::to_string(h.size) + " is too large");
  const uint64_t l1_needed = h.l1_entries_for(h.size);
  if (l1_needed > kMaxL1Bytes / 8 || uint64_t{h.l1_size} > kMaxL1Bytes / 8)
    return invalid("the L1 table would be larger than 32 MiB (virtual size " +
                   std::to_string(h.size) + ")");
  if (h.l1_size < l1_needed)
    return invalid("l1_size " + std::to_string(h.l1_size) + " is too small for virtual size " +
                   std::to_string(h.size));
  QK_TRY(check_table("L1 table", h.l1_table_offset, uint64_t{h.l1_size} * 8, cs));

  if (h.refcount_table_clusters == 0) return invalid("refcount_table_clusters is 0");
  if (uint64_t{h.refcount_table_clusters} * cs > kMaxRefcountTableBytes)
    return invalid("the refcount table would be larger than 8 MiB");
  QK_TRY(check_table("refcount table", h.refcount_table_offset,
                     uint64_t{h.refcount_table_clusters} * cs, cs));

  if (h.nb_snapshots > kMaxSnapshots)
    return invalid(std::to_string(h.nb_snapshots) + " snapshots is more than 65536");
  if (h.nb_snapshots > 0) QK_TRY(check_table("snapshot table", h.snapshots_offset, 1, cs));

  // No table may overlap the header or another table.
  std::vector<Interval> tables{{"header", 0, cs},
                               {"refcount table", h.refcount_table_offset,
                                h.refcount_table_offset + uint64_t{h.refcount_table_clusters} * cs}};
  if (h.l1_size > 0)
    tables.push_back({"L1 table", h.l1_table_offset, h.l1_table_offset + uint64_t{h.l1_size} * 8});
  if (h.nb_snapshots > 0)
    tables.push_back({"snapshot table", h.snapshots_offset, h.snapshots_offset + 1});
  for (size_t i = 0; i < tables.size(); ++i)
    for (size_t j = i + 1; j < tables.size(); ++j)
      if (tables[i].start < tables[j].end && tables[j].start < tables[i].end)
        return invalid(std::string("the ") + tables[j].name + " overlaps the " + tables[i].name);

  // Extensions live between the header and the end of cluster 0 (or the
  // backing file name, which QEMU stores after them).
  const uint64_t cluster0_end = std::min<uint64_t>(cs, buf.size());
  uint64_t ext_end = cluster0_end;
  if (h.backing_file_offset != 0) {
    if (h.backing_file_size > kMaxBackingNameBytes)
      return invalid("backing file name is longer than 1023 bytes");
    if (h.backing_file_offset < h.header_length ||
        h.backing_file_offset > cluster0_end ||
        h.backing_file_size > cluster0_end - h.backing_file_offset)
      return invalid("backing file name lies outside the first cluster");
    h.backing_file.assign(reinterpret_cast<const char*>(p + h.backing_file_offset),
                          h.backing_file_size);
    ext_end = h.backing_file_offset;
  }
  if (h.version == 3) QK_TRY(parse_extensions(h, buf, h.header_length, ext_end));
  // Version 2 images may carry extensions too (after the 72-byte header).
  if (h.version == 2 && ext_end >= kV2HeaderLength + 8)
    QK_TRY(parse_extensions(h, buf, kV2HeaderLength, ext_end));

  if ((h.incompatible_features & kIncompatDataFile) && h.data_file.empty())
    return invalid("the image needs an external data file but does not name one");
  return h;
}

Result<std::vector<uint8_t>> serialize_header(const Header& h) {
  const uint64_t cs = h.cluster_size();
  std::vector<uint8_t> out(cs, 0);
  uint8_t* p = out.data();
  store_be32(p, kMagic);
  store_be32(p + 4, h.version);
  store_be32(p + 20, h.cluster_bits);
  store_be64(p + 24, h.size);
  store_be32(p + 32, 0);
  store_be32(p + 36, h.l1_size);
  store_be64(p + 40, h.l1_table_offset);
  store_be64(p + 48, h.refcount_table_offset);
  store_be32(p + 56, h.refcount_table_clusters);
  store_be32(p + 60, h.nb_snapshots);
  store_be64(p + 64, h.snapshots_offset);
  uint64_t pos = kV2HeaderLength;
  if (h.version >= 3) {
    store_be64(p + 72, h.incompatible_features);
    store_be64(p + 80, h.compatible_features);
    store_be64(p + 88, h.autoclear_features);
    store_be32(p + 96, h.refcount_order);
    store_be32(p + 100, kV3HeaderLength);
    p[104] = h.compression_type;
    pos = kV3HeaderLength;
  }
  auto put_extension = [&](uint32_t type, const uint8_t* data, uint64_t length) -> Status {
    if (pos + 8 + round_up8(length) + 8 > cs)
      return make_error(EINVAL, "the header extensions do not fit in one cluster");
    store_be32(p + pos, type);
    store_be32(p + pos + 4, static_cast<uint32_t>(length));
    if (length) std::memcpy(p + pos + 8, data, length);
    pos += 8 + round_up8(length);
    return {};
  };
  auto as_bytes = [](const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); };
  if (!h.backing_format.empty())
    QK_TRY(put_extension(kExtBackingFormat, as_bytes(h.backing_format), h.backing_format.size()));
  if (!h.data_file.empty())
    QK_TRY(put_extension(kExtDataFile, as_bytes(h.data_file), h.data_file.size()));
  for (const HeaderExtension& e : h.extensions)
    if (e.type != kExtBackingFormat && e.type != kExtDataFile)
      QK_TRY(put_extension(e.type, e.data.data(), e.data.size()));
  pos += 8;  // end-of-extensions marker (already zero)
  if (!h.backing_file.empty()) {
    if (h.backing_file.size() > kMaxBackingNameBytes)
      return make_error(EINVAL, "backing file name is longer than 1023 bytes");
    if (pos + h.backing_file.size() > cs)
      return make_error(EINVAL, "the backing file name does not fit in the first cluster");
    store_be64(p + 8, pos);
    store_be32(p + 16, static_cast<uint32_t>(h.backing_file.size()));
    std::memcpy(p + pos, h.backing_file.data(), h.backing_file.size());
    pos += h.backing_file.size();
  }
  out.resize(std::max<uint64_t>(pos, kSectorSize));
  return out;
}

}  // namespace qcowkit::qcow2
