// qcow version 1 images as read-only BlockDevices over the block map image.
#include <cstring>
#include <vector>

#include "formats/block_map_image.hpp"
#include "qcowkit/codec.hpp"
#include "qcowkit/qcow1.hpp"
#include "util/endian.hpp"

namespace qcowkit {
namespace {

using namespace formats;

constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb", as qcow2
constexpr uint64_t kHeaderSize = 48;
constexpr uint64_t kCompressed = uint64_t{1} << 63;
constexpr uint64_t kMaxTableBytes = 64u << 20;  // every L2 table, held in memory

struct Layout {
  uint64_t size = 0, l1_offset = 0;
  unsigned cluster_bits = 0, l2_bits = 0;
  std::vector<uint64_t> l1, l2;  // l2: every cluster's entry, table after table
};

Result<Layout> load(BlockDevice& file, bool tables) {
  const uint64_t file_size = file.info().size;
  if (file_size < kHeaderSize)
    return make_error(EINVAL, "file of " + std::to_string(file_size) + " bytes is too small for a qcow header");
  uint8_t h[kHeaderSize];
  QK_TRY(file.read(0, h));
  if (load_be32(h) != kMagic || load_be32(h + 4) != 1)
    return make_error(EINVAL, "not a qcow version 1 image");
  Layout l;
  const uint64_t backing_offset = load_be64(h + 8);
  l.size = load_be64(h + 24);
  l.cluster_bits = h[32];
  l.l2_bits = h[33];
  const uint32_t crypt = load_be32(h + 36);
  l.l1_offset = load_be64(h + 40);
  if (backing_offset != 0)
    return make_error(ENOTSUP, "qcow images with a backing file are not supported");
  if (crypt != 0) return make_error(ENOTSUP, "encrypted qcow images are not supported");
  if (l.cluster_bits < 9 || l.cluster_bits > 16)
    return make_error(EINVAL, "qcow cluster bits " + std::to_string(l.cluster_bits) +
                                  " are outside 9..16");
  if (l.l2_bits < 6 || l.l2_bits > 16)
    return make_error(EINVAL, "qcow L2 bits " + std::to_string(l.l2_bits) + " are outside 6..16");
  if (l.size > (uint64_t{1} << 50) || l.size % 512)
    return make_error(EINVAL, "qcow size " + std::to_string(l.size) + " is out of range or not whole sectors");
  if (!tables) return l;
  const uint64_t span = uint64_t{1} << (l.cluster_bits + l.l2_bits);  // bytes an L2 table maps
  const uint64_t l1_entries = (l.size + span - 1) / span;
  const uint64_t l2_entries = uint64_t{1} << l.l2_bits;
  const uint64_t clusters = (l.size + (uint64_t{1} << l.cluster_bits) - 1) >> l.cluster_bits;
  if (l1_entries * 8 > kMaxTableBytes || clusters * 8 > kMaxTableBytes)
    return make_error(EFBIG, "qcow tables for " + std::to_string(l.size) +
                                 " bytes are over the 64 MiB limit");
  if (l.l1_offset > file_size || file_size - l.l1_offset < l1_entries * 8)
    return make_error(EINVAL, "qcow L1 table at offset " + std::to_string(l.l1_offset) +
                                  " is outside the file");
  std::vector<uint8_t> raw(l1_entries * 8);
  QK_TRY(file.read(l.l1_offset, raw));
  l.l1.resize(l1_entries);
  l.l2.assign(clusters, 0);
  std::vector<uint8_t> table(l2_entries * 8);
  const uint64_t cluster = uint64_t{1} << l.cluster_bits;
  const uint64_t offset_mask = (uint64_t{1} << (63 - l.cluster_bits)) - 1;
  for (uint64_t i = 0; i < l1_entries; ++i) {
    l.l1[i] = load_be64(raw.data() + i * 8);
    if (l.l1[i] == 0) continue;
    if (l.l1[i] < kHeaderSize || l.l1[i] > file_size || file_size - l.l1[i] < table.size())
      return make_error(EINVAL, "qcow L2 table " + std::to_string(i) + " at offset " +
                                    std::to_string(l.l1[i]) + " is outside the file");
    QK_TRY(file.read(l.l1[i], table));
    for (uint64_t k = 0; k < l2_entries && i * l2_entries + k < clusters; ++k) {
      const uint64_t e = load_be64(table.data() + k * 8);
      const uint64_t c = i * l2_entries + k;
      l.l2[c] = e;
      if (e == 0) continue;
      if (e & kCompressed) {
        const uint64_t at = e & offset_mask;
        const uint64_t length = (e >> (63 - l.cluster_bits)) & (cluster - 1);
        if (at > file_size || file_size - at < length)
          return make_error(EINVAL, "qcow compressed cluster " + std::to_string(c) +
                                        " reaches past the end of the file");
      } else if (e > file_size || file_size - e < cluster) {
        return make_error(EINVAL, "qcow cluster " + std::to_string(c) + " at offset " +
                                      std::to_string(e) + " points past the end of the file");
      }
    }
  }
  return l;
}

class Qcow1Map final : public BlockMap {
 public:
  Qcow1Map(std::shared_ptr<BlockDevice> file, Layout layout)
      : file_(std::move(file)), l_(std::move(layout)) {}
  uint64_t block_size() const override { return uint64_t{1} << l_.cluster_bits; }
  bool file_holes_are_zero() const override { return false; }
  BlockLocation locate(uint64_t c) const override {
    const uint64_t e = c < l_.l2.size() ? l_.l2[c] : 0;
    if (e == 0) return {};
    if (e & kCompressed) return {BlockLocation::Kind::special, 0};
    return {BlockLocation::Kind::data, e};
  }
  Result<uint64_t> allocate(uint64_t) override {
    return make_error(EROFS, "qcow (version 1) images are read-only");
  }
  Status read_special(uint64_t c, uint64_t in, ByteSpan out) override {
    const uint64_t cluster = block_size();
    const uint64_t e = l_.l2[c];
    const uint64_t at = e & ((uint64_t{1} << (63 - l_.cluster_bits)) - 1);
    const uint64_t length = (e >> (63 - l_.cluster_bits)) & (cluster - 1);
    const Codec* codec = builtin_codecs().deflate;
    if (!codec) return make_error(ENOTSUP, "this build has no deflate codec");
    std::vector<uint8_t> packed(length), plain(cluster);
    QK_TRY(file_->read(at, packed));
    Status st = codec->decompress(packed, plain);
    if (!st.ok()) return with_context(std::move(st).error(), "qcow cluster " + std::to_string(c));
    std::memcpy(out.data(), plain.data() + in, out.size());
    return {};
  }

 private:
  std::shared_ptr<BlockDevice> file_;
  Layout l_;
};

}  // namespace

bool looks_like_qcow1(BlockDevice& file) {
  uint8_t h[8];
  if (file.info().size < kHeaderSize || !file.read(0, h).ok()) return false;
  return load_be32(h) == kMagic && load_be32(h + 4) == 1;
}

Result<Qcow1Details> probe_qcow1(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(Layout l, load(file, false));
  return Qcow1Details{l.size, uint32_t{1} << l.cluster_bits};
}

Result<std::unique_ptr<BlockDevice>> open_qcow1(std::shared_ptr<BlockDevice> file, bool read_only) {
  if (!read_only)
    return make_error(EROFS, "qcow (version 1) images open read-only; convert to qcow2 to change them");
  QK_ASSIGN_OR_RETURN(Layout l, load(*file, true));
  const uint64_t size = l.size;
  auto map = std::make_unique<Qcow1Map>(file, std::move(l));
  return std::unique_ptr<BlockDevice>(
      std::make_unique<BlockMapImage>(file, std::move(map), size, true, "qcow image"));
}

}  // namespace qcowkit
