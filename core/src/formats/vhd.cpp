// VHD images as BlockDevices: a fixed image maps guest offsets onto the
// file one to one; a dynamic one through its block allocation table (BAT),
// each allocated block being a sector bitmap followed by the block's data.
#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/block_map_image.hpp"
#include "formats/read_only_image.hpp"
#include "formats/vhd_structs.hpp"
#include "qcowkit/vhd.hpp"
#include "util/endian.hpp"

namespace qcowkit {
namespace {

using namespace formats;
using namespace formats::vhd;

constexpr const char* kName = "vpc image";

// A fixed disk: the data, then the footer.
class FixedMap final : public BlockMap {
 public:
  uint64_t block_size() const override { return kDefaultBlockSize; }
  BlockLocation locate(uint64_t block) const override {
    return {BlockLocation::Kind::data, block * kDefaultBlockSize};
  }
  Result<uint64_t> allocate(uint64_t block) override { return block * kDefaultBlockSize; }
  bool identity_mapped() const override { return true; }
};

// A dynamic disk. Blocks are appended where the footer was, which moves to
// the new end of the file; the bitmap says every sector is present (as
// qemu-img writes it: readers then never mistake written data for absent).
class DynamicMap final : public BlockMap {
 public:
  DynamicMap(std::shared_ptr<BlockDevice> file, std::vector<uint32_t> bat, uint64_t bat_offset,
             uint32_t block_size, uint64_t next_free, std::array<uint8_t, kFooterSize> footer)
      : file_(std::move(file)),
        bat_(std::move(bat)),
        bat_offset_(bat_offset),
        block_size_(block_size),
        bitmap_size_(bitmap_bytes(block_size)),
        next_free_(next_free),
        footer_(footer) {}

  // A bit per sector, padded to whole sectors.
  static uint64_t bitmap_bytes(uint32_t block_size) {
    return (uint64_t{block_size} / 512 / 8 + 511) / 512 * 512;
  }

  uint64_t block_size() const override { return block_size_; }
  bool file_holes_are_zero() const override { return false; }

  BlockLocation locate(uint64_t block) const override {
    if (block >= bat_.size() || bat_[block] == kUnallocated) return {};
    return {BlockLocation::Kind::data, uint64_t{bat_[block]} * 512 + bitmap_size_};
  }

  Result<uint64_t> allocate(uint64_t block) override {
    if (block >= bat_.size()) return make_error(ERANGE, "block outside the BAT");
    const uint64_t at = next_free_;
    if (at / 512 >= kUnallocated)
      return make_error(EFBIG, "the file would outgrow what a BAT entry can address");
    const uint64_t end = at + bitmap_size_ + block_size_;
    // The new block covers the old footer; the file grows by the block and
    // the footer goes after it. Bytes past the old end read as zeroes.
    QK_TRY(file_->resize(end + kFooterSize));
    std::vector<uint8_t> bitmap(bitmap_size_, 0xff);
    QK_TRY(file_->write(at, bitmap));
    QK_TRY(file_->write(end, footer_));
    uint8_t entry[4];
    store_be32(entry, uint32_t(at / 512));
    QK_TRY(file_->write(bat_offset_ + block * 4, entry));
    bat_[block] = uint32_t(at / 512);
    next_free_ = end;
    return at + bitmap_size_;
  }

 private:
  std::shared_ptr<BlockDevice> file_;
  std::vector<uint32_t> bat_;
  const uint64_t bat_offset_;
  const uint32_t block_size_;
  const uint64_t bitmap_size_;
  uint64_t next_free_;  // where the next block goes: the footer's offset
  const std::array<uint8_t, kFooterSize> footer_;
};

// A differencing disk: an allocated block's sector bitmap says which of its
// sectors it holds (a set bit, most significant bit first); the others,
// and every block the BAT leaves unallocated, read from the parent (zeroes
// past the parent's end, or everywhere when the caller left the parent
// closed). Read-only; thread-safe since nothing changes after open.
class DifferencingImage final : public ReadOnlyImage {
 public:
  DifferencingImage(std::shared_ptr<BlockDevice> file, std::vector<uint32_t> bat,
                    uint32_t block_size, uint64_t size, std::shared_ptr<BlockDevice> parent)
      : ReadOnlyImage(std::string(kName) + ": differencing images"),
        file_(std::move(file)), bat_(std::move(bat)), block_size_(block_size),
        bitmap_size_((uint64_t{block_size} / 512 / 8 + 511) / 512 * 512), size_(size),
        parent_(std::move(parent)) {}

  DeviceInfo info() const override { return DeviceInfo{size_, 1, true}; }

  Status read(uint64_t offset, ByteSpan buffer) override {
    QK_TRY(check_request(info(), offset, buffer.size(), false, "read"));
    std::vector<uint8_t> bitmap;
    return for_each_block_piece(offset, buffer.size(), block_size_,
                                [&](uint64_t pos, uint64_t block, uint64_t in_block, uint64_t done,
                                    uint64_t n) -> Status {
      ByteSpan piece = buffer.subspan(done, n);
      if (block >= bat_.size() || bat_[block] == kUnallocated) return from_parent(pos, piece);
      const uint64_t at = uint64_t{bat_[block]} * 512;
      bitmap.resize(bitmap_size_);
      QK_TRY(file_->read(at, bitmap));
      // Runs of sectors with the same bit.
      for (uint64_t i = 0, j; i < n; i = j) {
        const uint64_t sector = (in_block + i) / 512;
        const bool here = bitmap[sector / 8] & (0x80 >> (sector % 8));
        for (j = i; j < n;) {
          const uint64_t s = (in_block + j) / 512;
          if (bool(bitmap[s / 8] & (0x80 >> (s % 8))) != here) break;
          j = std::min<uint64_t>(n, (s + 1) * 512 - in_block);
        }
        ByteSpan run = piece.subspan(i, j - i);
        if (!here) {
          QK_TRY(from_parent(pos + i, run));
          continue;
        }
        Status st = file_->read(at + bitmap_size_ + in_block + i, run);
        if (!st.ok())
          return with_context(std::move(st).error(),
                              std::string(kName) + ": reading guest offset " + std::to_string(pos + i));
      }
      return {};
    });
  }

  // Allocated blocks are data; the rest is what the parent says it holds
  // there (one block per answer: callers ask again from where it stops).
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    QK_TRY(check_request(info(), offset, length, false, "extents"));
    std::vector<Extent> out;
    if (length == 0) return out;
    const uint64_t block = offset / block_size_;
    const uint64_t n = std::min<uint64_t>((block + 1) * block_size_ - offset, length);
    if (block < bat_.size() && bat_[block] != kUnallocated) {
      out.push_back(Extent{offset, n, ExtentKind::data});
      return out;
    }
    const uint64_t parent_size = parent_ ? parent_->info().size : 0;
    if (offset >= parent_size) {
      out.push_back(Extent{offset, n, ExtentKind::hole});
      return out;
    }
    QK_ASSIGN_OR_RETURN(out, parent_->extents(offset, std::min(n, parent_size - offset)));
    if (out.empty()) return make_error(EIO, std::string(kName) + ": the parent reported no extents");
    return out;
  }

  Status close() override { return {}; }  // the file and the parent are the opener's

 private:
  Status from_parent(uint64_t pos, ByteSpan out) const {
    const uint64_t parent_size = parent_ ? parent_->info().size : 0;
    uint64_t have = pos < parent_size ? std::min<uint64_t>(out.size(), parent_size - pos) : 0;
    if (have) {
      Status st = parent_->read(pos, out.subspan(0, have));
      if (!st.ok()) return with_context(std::move(st).error(), std::string(kName) + ": parent");
    }
    std::memset(out.data() + have, 0, out.size() - have);
    return {};
  }

  std::shared_ptr<BlockDevice> file_;
  const std::vector<uint32_t> bat_;
  const uint64_t block_size_, bitmap_size_, size_;
  std::shared_ptr<BlockDevice> parent_;
};

struct Parsed {
  bool differencing = false;
  VhdDetails details;
  std::array<uint8_t, kFooterSize> footer_bytes{};
  SparseHeader sparse;
};

// The parent's name: the relative Windows locator (W2ru), else the
// absolute one (W2ku), else the header's Unicode name, as the VHD
// specification orders them. Windows separators become '/'; the name is
// only a name: the image opener decides whether it may be opened.
Result<std::string> parent_name(BlockDevice& file, const SparseHeader& s) {
  const uint64_t file_size = file.info().size;
  for (uint32_t platform : {kPlatformW2ru, kPlatformW2ku}) {
    for (const ParentLocator& l : s.locators) {
      if (l.platform != platform || l.data_length == 0) continue;
      if (l.data_length > kMaxLocatorBytes || l.data_offset > file_size ||
          file_size - l.data_offset < l.data_length)
        return make_error(EINVAL, "VHD parent locator of " + std::to_string(l.data_length) +
                                      " bytes at offset " + std::to_string(l.data_offset) +
                                      " is outside the file or over " +
                                      std::to_string(kMaxLocatorBytes) + " bytes");
      std::vector<uint8_t> raw(l.data_length);
      QK_TRY(file.read(l.data_offset, raw));
      std::string name = utf16_to_utf8(raw.data(), raw.size(), false);
      std::replace(name.begin(), name.end(), '\\', '/');
      if (!name.empty()) return name;
    }
  }
  std::string name = s.parent_name;
  std::replace(name.begin(), name.end(), '\\', '/');
  if (name.empty()) return make_error(EINVAL, "differencing VHD names no parent");
  return name;
}

Result<Parsed> parse(BlockDevice& file) {
  const uint64_t file_size = file.info().size;
  if (file_size < kFooterSize)
    return make_error(EINVAL, "file of " + std::to_string(file_size) +
                                  " bytes is too small for a VHD footer");
  Parsed p;
  QK_TRY(file.read(0, p.footer_bytes));
  // A footer copy at the start means a dynamic disk, unless it says fixed:
  // then it is the disk's own first sector (or the whole of an empty fixed
  // disk), and the footer that counts is the last sector, as for any fixed
  // disk.
  const bool dynamic = has_footer_cookie(p.footer_bytes.data()) &&
                       load_be32(p.footer_bytes.data() + 60) != kTypeFixed;
  if (!dynamic) QK_TRY(file.read(file_size - kFooterSize, p.footer_bytes));
  QK_ASSIGN_OR_RETURN(Footer footer, parse_footer(p.footer_bytes.data(),
                                                  dynamic ? "at offset 0" : "at the end of the file"));
  // A differencing disk is laid out as a dynamic one, plus its parent's
  // name and a sector bitmap that counts.
  p.differencing = dynamic && footer.type == kTypeDifferencing;
  if (footer.type != (dynamic ? kTypeDynamic : kTypeFixed) && !p.differencing)
    return make_error(EINVAL, "VHD disk type " + std::to_string(footer.type) + " in a footer " +
                                  (dynamic ? "copy at offset 0 (expected 3, dynamic, or 4, differencing)"
                                           : "at the end of the file (expected 2, fixed)"));
  VhdDetails& d = p.details;
  d.fixed = !dynamic;
  d.virtual_size = virtual_size(footer);
  d.geometry = {footer.cylinders, footer.heads, footer.sectors,
                uint64_t{footer.cylinders} * footer.heads * footer.sectors * 512};
  d.creator_app.assign(footer.creator_app.data(), 4);
  if (d.virtual_size / 512 > kMaxSectors)
    return make_error(EFBIG, "VHD virtual size " + std::to_string(d.virtual_size) +
                                 " is over the 2040 GiB maximum");
  if (d.fixed) {
    if (d.virtual_size > file_size - kFooterSize)
      return make_error(EINVAL, "fixed VHD of " + std::to_string(d.virtual_size) +
                                    " bytes in a file of only " + std::to_string(file_size));
    return p;
  }
  // The sparse header: inside the file, after the footer copy.
  if (footer.data_offset < kFooterSize || footer.data_offset > file_size ||
      file_size - footer.data_offset < kSparseHeaderSize)
    return make_error(EINVAL, "VHD sparse header offset " + std::to_string(footer.data_offset) +
                                  " is outside the file");
  std::array<uint8_t, kSparseHeaderSize> header{};
  QK_TRY(file.read(footer.data_offset, header));
  QK_ASSIGN_OR_RETURN(p.sparse, parse_sparse_header(header.data()));
  const SparseHeader& s = p.sparse;
  if (s.block_size < 512 || (s.block_size & (s.block_size - 1)))
    return make_error(EINVAL, "VHD block size " + std::to_string(s.block_size) +
                                  " is not a power of two of at least 512");
  d.block_size = s.block_size;
  const uint64_t needed = (d.virtual_size + s.block_size - 1) / s.block_size;
  if (s.max_table_entries < needed)
    return make_error(EINVAL, "VHD BAT of " + std::to_string(s.max_table_entries) +
                                  " entries is too small for " + std::to_string(d.virtual_size) +
                                  " bytes");
  const uint64_t bat_bytes = uint64_t{s.max_table_entries} * 4;
  if (bat_bytes > kMaxBatBytes)
    return make_error(EFBIG, "VHD BAT of " + std::to_string(s.max_table_entries) +
                                 " entries is over the " + std::to_string(kMaxBatBytes >> 20) +
                                 " MiB limit");
  if (s.table_offset < footer.data_offset + kSparseHeaderSize || s.table_offset > file_size ||
      file_size - s.table_offset < bat_bytes)
    return make_error(EINVAL, "VHD BAT at offset " + std::to_string(s.table_offset) + " (" +
                                  std::to_string(bat_bytes) + " bytes) is outside the file or "
                                  "overlaps the headers");
  if (p.differencing) {
    QK_ASSIGN_OR_RETURN(d.parent, parent_name(file, s));
  }
  return p;
}

// Reads the BAT and checks every block lies after the metadata, inside the
// file, apart from every other block. Returns where the next block goes.
Result<uint64_t> load_bat(BlockDevice& file, const Parsed& p, std::vector<uint32_t>& bat) {
  const SparseHeader& s = p.sparse;
  const uint64_t file_size = file.info().size;
  std::vector<uint8_t> raw(uint64_t{s.max_table_entries} * 4);
  QK_TRY(file.read(s.table_offset, raw));
  bat.resize(s.max_table_entries);
  const uint64_t span = DynamicMap::bitmap_bytes(s.block_size) + s.block_size;
  const uint64_t metadata_end = (s.table_offset + raw.size() + 511) / 512 * 512;
  std::vector<std::pair<uint64_t, uint64_t>> used;  // (start, block index)
  for (uint64_t i = 0; i < bat.size(); ++i) {
    bat[i] = load_be32(raw.data() + i * 4);
    if (bat[i] == kUnallocated) continue;
    const uint64_t start = uint64_t{bat[i]} * 512;
    if (start < metadata_end)
      return make_error(EINVAL, "VHD BAT entry " + std::to_string(i) + " (sector " +
                                    std::to_string(bat[i]) + ") overlaps the headers or the BAT");
    if (start > file_size || file_size - start < span)
      return make_error(EINVAL, "VHD BAT entry " + std::to_string(i) + " (sector " +
                                    std::to_string(bat[i]) + ") points past the end of the file");
    used.emplace_back(start, i);
  }
  std::sort(used.begin(), used.end());
  for (size_t k = 1; k < used.size(); ++k)
    if (used[k].first - used[k - 1].first < span)
      return make_error(EINVAL, "VHD blocks " + std::to_string(used[k - 1].second) + " and " +
                                    std::to_string(used[k].second) + " overlap in the file");
  uint64_t next = metadata_end;
  if (!used.empty()) next = std::max(next, used.back().first + span);
  return next;
}

}  // namespace

bool looks_like_vhd(BlockDevice& file) {
  uint8_t head[8];
  if (file.info().size < kFooterSize || !file.read(0, head).ok()) return false;
  return has_footer_cookie(head);
}

Result<VhdDetails> probe_vhd(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(Parsed p, parse(file));
  return p.details;
}

Result<std::unique_ptr<BlockDevice>> open_vhd(std::shared_ptr<BlockDevice> file, bool read_only) {
  QK_ASSIGN_OR_RETURN(Parsed p, parse(*file));
  if (p.differencing)
    return make_error(ENOTSUP, "a differencing VHD needs its parent: open it through the image "
                               "opener (open_named_image), which opens the parent '" +
                                   p.details.parent + "'");
  if (!read_only && file->info().read_only)
    return make_error(EROFS, "the VHD file is read-only");
  std::unique_ptr<BlockMap> map;
  if (p.details.fixed) {
    map = std::make_unique<FixedMap>();
  } else {
    std::vector<uint32_t> bat;
    QK_ASSIGN_OR_RETURN(uint64_t next_free, load_bat(*file, p, bat));
    map = std::make_unique<DynamicMap>(file, std::move(bat), p.sparse.table_offset,
                                       p.sparse.block_size, next_free, p.footer_bytes);
  }
  return std::unique_ptr<BlockDevice>(std::make_unique<BlockMapImage>(
      file, std::move(map), p.details.virtual_size, read_only, kName));
}

Result<std::unique_ptr<BlockDevice>> open_vhd_with_files(std::shared_ptr<BlockDevice> file,
                                                         bool read_only, ImageFiles& files) {
  QK_ASSIGN_OR_RETURN(Parsed p, parse(*file));
  if (!p.differencing) return open_vhd(std::move(file), read_only);
  if (!read_only)
    return make_error(EROFS, "differencing VHD images open read-only; convert them to change them");
  std::vector<uint32_t> bat;
  QK_ASSIGN_OR_RETURN(uint64_t next_free, load_bat(*file, p, bat));
  (void)next_free;  // nothing is ever written
  return std::unique_ptr<BlockDevice>(std::make_unique<DifferencingImage>(
      std::move(file), std::move(bat), p.sparse.block_size, p.details.virtual_size, files.backing()));
}

Result<std::unique_ptr<BlockDevice>> create_vhd(std::shared_ptr<BlockDevice> file,
                                                const VhdCreateOptions& options) {
  QK_ASSIGN_OR_RETURN(VhdGeometry g, vhd_size_for(options.size, options.force_size));
  Footer f;
  std::memcpy(f.creator_app.data(), options.force_size ? "qem2" : "qemu", 4);
  f.original_size = f.current_size = g.size;
  f.cylinders = g.cylinders;
  f.heads = g.heads;
  f.sectors = g.sectors;
  if (options.fixed) {
    f.type = kTypeFixed;
    f.data_offset = ~uint64_t{0};
    const auto footer = build_footer(f);
    QK_TRY(file->resize(g.size + kFooterSize));
    QK_TRY(file->write(g.size, footer));
  } else {
    // Footer copy, sparse header, BAT (all unallocated), footer: qemu-img's layout.
    f.type = kTypeDynamic;
    f.data_offset = kFooterSize;
    const auto footer = build_footer(f);
    SparseHeader s;
    s.table_offset = kFooterSize + kSparseHeaderSize;
    s.block_size = kDefaultBlockSize;
    s.max_table_entries = uint32_t((g.size + s.block_size - 1) / s.block_size);
    const uint64_t bat_bytes = (uint64_t{s.max_table_entries} * 4 + 511) / 512 * 512;
    const uint64_t end = s.table_offset + bat_bytes;
    QK_TRY(file->resize(end + kFooterSize));
    QK_TRY(file->write(0, footer));
    QK_TRY(file->write(kFooterSize, build_sparse_header(s)));
    std::vector<uint8_t> bat(bat_bytes, 0xff);
    QK_TRY(file->write(s.table_offset, bat));
    QK_TRY(file->write(end, footer));
  }
  QK_TRY(file->flush());
  return open_vhd(std::move(file), false);
}

}  // namespace qcowkit
