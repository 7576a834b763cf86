// VHDX images as BlockDevices: the header section, the region table, the
// metadata items, and the BAT that maps payload blocks into the file.
#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "formats/block_map_image.hpp"
#include "formats/vhdx_structs.hpp"
#include "qcowkit/vhdx.hpp"
#include "util/endian_le.hpp"

namespace qcowkit {
namespace {

using namespace formats;
using namespace formats::vhdx;

constexpr const char* kName = "vhdx image";
// The largest BAT held in memory: 16 Mi payload blocks (16 TiB of 1 MiB
// blocks, the whole 64 TiB from 4 MiB blocks up).
constexpr uint64_t kMaxPayloadBlocks = 16u << 20;

std::string num(uint64_t v) { return std::to_string(v); }

struct Region {
  uint64_t offset = 0;
  uint32_t length = 0;
};

struct Parsed {
  Header header;
  int current = 0;  // which header slot is current
  Region bat, metadata;
  VhdxDetails details;
  uint64_t payload_blocks = 0, bat_entries = 0;
  uint32_t chunk_ratio = 0;
};

Result<Header> parse_header_at(BlockDevice& file, uint64_t at, std::string& why) {
  std::array<uint8_t, kHeaderSize> b{};
  QK_TRY(file.read(at, b));
  const std::string name = at == kHeader1At ? "VHDX header 1" : "VHDX header 2";
  if (load_le32(b.data()) != kHeadSig) {
    why += name + " has no signature; ";
    return make_error(EINVAL, why);
  }
  if (!checksum_ok(b.data(), b.size(), 4)) {
    why += name + " has a wrong CRC-32C checksum; ";
    return make_error(EINVAL, why);
  }
  Header h;
  h.sequence = load_le64(&b[8]);
  std::memcpy(h.file_write.data(), &b[16], 16);
  std::memcpy(h.data_write.data(), &b[32], 16);
  std::memcpy(h.log.data(), &b[48], 16);
  h.log_version = load_le16(&b[64]);
  h.version = load_le16(&b[66]);
  h.log_length = load_le32(&b[68]);
  h.log_offset = load_le64(&b[72]);
  if (h.version != 1) {
    why += name + " has version " + num(h.version) + " (1 is supported); ";
    return make_error(ENOTSUP, why);
  }
  return h;
}

// The current header: the valid one with the higher sequence number.
Result<std::pair<Header, int>> pick_header(BlockDevice& file) {
  std::string why;
  auto h1 = parse_header_at(file, kHeader1At, why);
  auto h2 = parse_header_at(file, kHeader2At, why);
  if (!h1.ok() && !h2.ok())
    return make_error(EINVAL, "no valid VHDX header: " + why.substr(0, why.size() - 2));
  if (!h2.ok()) return std::make_pair(*h1, 0);
  if (!h1.ok()) return std::make_pair(*h2, 1);
  if (h1->sequence == h2->sequence && build_header(*h1) != build_header(*h2))
    return make_error(EINVAL, "both VHDX headers have sequence number " + num(h1->sequence) +
                                  " but differ");
  return h2->sequence > h1->sequence ? std::make_pair(*h2, 1) : std::make_pair(*h1, 0);
}

// [a, a + n) and [b, b + m) overlap.
bool overlaps(uint64_t a, uint64_t n, uint64_t b, uint64_t m) { return a < b + m && b < a + n; }

Status parse_region_table(BlockDevice& file, Parsed& p, uint64_t file_size) {
  std::vector<uint8_t> b(kRegionTableSize);
  std::string why;
  bool found = false;
  for (uint64_t at : {kRegionTable1At, kRegionTable2At}) {
    QK_TRY(file.read(at, b));
    const std::string name = at == kRegionTable1At ? "VHDX region table 1" : "VHDX region table 2";
    if (load_le32(b.data()) != kRegiSig)
      why += name + " has no signature; ";
    else if (!checksum_ok(b.data(), b.size(), 4))
      why += name + " has a wrong CRC-32C checksum; ";
    else {
      found = true;
      break;
    }
  }
  if (!found) return make_error(EINVAL, "no valid VHDX region table: " + why.substr(0, why.size() - 2));
  const uint32_t count = load_le32(&b[8]);
  if (count > kMaxTableEntries)
    return make_error(EINVAL, "VHDX region table has " + num(count) + " entries (at most " +
                                  num(kMaxTableEntries) + ")");
  std::vector<std::pair<uint64_t, uint64_t>> used{{0, kHeaderSectionSize},
                                                  {p.header.log_offset, p.header.log_length}};
  std::optional<Region> bat, metadata;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = &b[16 + uint64_t{i} * 32];
    Guid g;
    std::memcpy(g.data(), e, 16);
    Region r{load_le64(e + 16), load_le32(e + 24)};
    const bool required = load_le32(e + 28) & 1;
    const bool is_bat = g == kBatRegion, is_meta = g == kMetadataRegion;
    const std::string name = is_bat ? "VHDX BAT region" : is_meta ? "VHDX metadata region"
                                                                  : "VHDX region " + num(i);
    if (!is_bat && !is_meta) {
      if (required) return make_error(ENOTSUP, name + " is required but unknown to this reader");
      continue;
    }
    if ((is_bat && bat) || (is_meta && metadata))
      return make_error(EINVAL, name + " is listed twice in the region table");
    if (r.offset % MiB || r.length % MiB || r.length == 0)
      return make_error(EINVAL, name + " at offset " + num(r.offset) + " (" + num(r.length) +
                                    " bytes) is not whole MiB");
    if (r.offset > file_size || file_size - r.offset < r.length)
      return make_error(EINVAL, name + " at offset " + num(r.offset) + " (" + num(r.length) +
                                    " bytes) lies past the end of the file (" + num(file_size) +
                                    " bytes)");
    for (const auto& [start, length] : used)
      if (overlaps(r.offset, r.length, start, length))
        return make_error(EINVAL, name + " at offset " + num(r.offset) +
                                      " overlaps the header section, the log or another region");
    used.emplace_back(r.offset, r.length);
    (is_bat ? bat : metadata) = r;
  }
  if (!bat) return make_error(EINVAL, "VHDX region table has no BAT region");
  if (!metadata) return make_error(EINVAL, "VHDX region table has no metadata region");
  p.bat = *bat;
  p.metadata = *metadata;
  return {};
}

Status parse_metadata(BlockDevice& file, Parsed& p) {
  std::vector<uint8_t> table(kMetadataTableSize);
  QK_TRY(file.read(p.metadata.offset, table));
  if (load_le64(table.data()) != kMetadataSig)
    return make_error(EINVAL, "VHDX metadata table has no signature");
  const uint16_t count = load_le16(&table[10]);
  if (count > kMaxTableEntries)
    return make_error(EINVAL, "VHDX metadata table has " + num(count) + " entries (at most " +
                                  num(kMaxTableEntries) + ")");
  struct Item {
    const Guid* id;
    const char* name;
    uint32_t length;
    std::optional<uint32_t> offset;
  };
  Item items[] = {{&kFileParameters, "file parameters", 8, {}},
                  {&kVirtualDiskSize, "virtual disk size", 8, {}},
                  {&kPage83, "page 83 data", 16, {}},
                  {&kLogicalSectorSize, "logical sector size", 4, {}},
                  {&kPhysicalSectorSize, "physical sector size", 4, {}},
                  {&kParentLocator, "parent locator", 0, {}}};
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = &table[32 + uint64_t{i} * 32];
    Guid g;
    std::memcpy(g.data(), e, 16);
    const uint32_t offset = load_le32(e + 16), length = load_le32(e + 20);
    const bool required = load_le32(e + 24) & 4;
    Item* item = nullptr;
    for (Item& it : items)
      if (*it.id == g) item = &it;
    const std::string name = item ? std::string("VHDX metadata item ") + item->name
                                  : "VHDX metadata item " + num(i);
    if (length != 0 && (offset < kMetadataTableSize || offset > p.metadata.length ||
                        p.metadata.length - offset < length))
      return make_error(EINVAL, name + " at offset " + num(offset) + " (" + num(length) +
                                    " bytes) lies outside the metadata region");
    if (!item) {
      if (required) return make_error(ENOTSUP, name + " is required but unknown to this reader");
      continue;
    }
    if (item->offset) return make_error(EINVAL, name + " is listed twice");
    if (item->length && length != item->length)
      return make_error(EINVAL, name + " is " + num(length) + " bytes, not " + num(item->length));
    item->offset = offset;
  }
  for (const Item& it : items)
    if (it.length && !it.offset)
      return make_error(EINVAL, std::string("VHDX metadata item ") + it.name + " is missing");
  auto read_item = [&](const Item& it, uint8_t* out) {
    return file.read(p.metadata.offset + *it.offset, ByteSpan(out, it.length));
  };
  uint8_t params[8], size[8], logical[4], physical[4];
  QK_TRY(read_item(items[0], params));
  QK_TRY(read_item(items[1], size));
  QK_TRY(read_item(items[3], logical));
  QK_TRY(read_item(items[4], physical));
  VhdxDetails& d = p.details;
  d.block_size = load_le32(params);
  const uint32_t flags = load_le32(params + 4);
  d.fixed = flags & 1;
  if (flags & 2)
    return make_error(ENOTSUP, "differencing VHDX images (with a parent) are not supported");
  d.virtual_size = load_le64(size);
  d.logical_sector_size = load_le32(logical);
  d.physical_sector_size = load_le32(physical);
  if (d.block_size < kMinBlockSize || d.block_size > kMaxBlockSize ||
      (d.block_size & (d.block_size - 1)))
    return make_error(EINVAL, "VHDX block size " + num(d.block_size) +
                                  " is not a power of two from 1 MiB to 256 MiB");
  if (d.logical_sector_size != 512 && d.logical_sector_size != 4096)
    return make_error(EINVAL, "VHDX logical sector size " + num(d.logical_sector_size) +
                                  " is not 512 or 4096");
  if (d.physical_sector_size != 512 && d.physical_sector_size != 4096)
    return make_error(EINVAL, "VHDX physical sector size " + num(d.physical_sector_size) +
                                  " is not 512 or 4096");
  if (d.virtual_size > kMaxVirtualSize || d.virtual_size % d.logical_sector_size)
    return make_error(EINVAL, "VHDX virtual disk size " + num(d.virtual_size) +
                                  " is not whole logical sectors up to 64 TiB");
  return {};
}

Result<Parsed> parse(BlockDevice& file) {
  const uint64_t file_size = file.info().size;
  if (file_size < kHeaderSectionSize)
    return make_error(EINVAL, "file of " + num(file_size) +
                                  " bytes is too small for a VHDX header section (1 MiB)");
  uint8_t sig[8];
  QK_TRY(file.read(0, sig));
  if (std::memcmp(sig, "vhdxfile", 8) != 0)
    return make_error(EINVAL, "not a VHDX image (no \"vhdxfile\" signature)");
  Parsed p;
  QK_ASSIGN_OR_RETURN(auto picked, pick_header(file));
  p.header = picked.first;
  p.current = picked.second;
  p.details.log_dirty = !is_zero_guid(p.header.log);
  const Header& h = p.header;
  if (h.log_length % MiB || h.log_offset % MiB || h.log_offset < kHeaderSectionSize ||
      (h.log_length && (h.log_offset > file_size || file_size - h.log_offset < h.log_length)))
    return make_error(EINVAL, "VHDX log at offset " + num(h.log_offset) + " (" +
                                  num(h.log_length) + " bytes) is not whole MiB inside the file");
  return p;
}

// The region table and metadata, read from `file` (after any log replay:
// the log may rewrite them).
Status parse_layout(BlockDevice& file, Parsed& p) {
  const uint64_t file_size = file.info().size;
  QK_TRY(parse_region_table(file, p, file_size));
  QK_TRY(parse_metadata(file, p));
  const VhdxDetails& d = p.details;
  p.chunk_ratio = uint32_t(kSectorsPerChunk * d.logical_sector_size / d.block_size);
  p.payload_blocks = (d.virtual_size + d.block_size - 1) / d.block_size;
  if (p.payload_blocks > kMaxPayloadBlocks)
    return make_error(EFBIG, "VHDX image of " + num(p.payload_blocks) +
                                 " blocks is over the limit of " + num(kMaxPayloadBlocks));
  p.bat_entries = p.payload_blocks ? p.payload_blocks + (p.payload_blocks - 1) / p.chunk_ratio : 0;
  if (p.bat_entries * 8 > p.bat.length)
    return make_error(EINVAL, "VHDX BAT region of " + num(p.bat.length) + " bytes is too small for " +
                                  num(p.bat_entries) + " entries");
  return {};
}

class VhdxMap final : public BlockMap {
 public:
  VhdxMap(std::shared_ptr<BlockDevice> file, const Parsed& p, std::vector<uint64_t> bat,
          uint64_t next_free)
      : file_(std::move(file)),
        bat_(std::move(bat)),
        bat_offset_(p.bat.offset),
        block_size_(p.details.block_size),
        sector_size_(p.details.logical_sector_size),
        chunk_ratio_(p.chunk_ratio),
        next_free_(next_free) {}

  uint64_t block_size() const override { return block_size_; }

  // Payload block `block`'s BAT index: a sector bitmap entry follows every
  // chunk_ratio payload entries.
  uint64_t index(uint64_t block) const { return block + block / chunk_ratio_; }

  BlockLocation locate(uint64_t block) const override {
    const uint64_t e = bat_[index(block)];
    switch (e & kBatStateMask) {
      case kFullyPresent: return {BlockLocation::Kind::data, e & kBatOffsetMask};
      case kPartiallyPresent: return {BlockLocation::Kind::special, e & kBatOffsetMask};
      case kNotPresent: return {};
      default: return {BlockLocation::Kind::zero, 0};  // zero, unmapped, undefined
    }
  }

  // Present sectors from the block, the others zeroes (no parent).
  Status read_special(uint64_t block, uint64_t in_block, ByteSpan out) override {
    const uint64_t host = bat_[index(block)] & kBatOffsetMask;
    const uint64_t bitmap = bat_[(block / chunk_ratio_ + 1) * (chunk_ratio_ + 1) - 1];
    const uint64_t first_sector = (block % chunk_ratio_) * (block_size_ / sector_size_);
    uint64_t done = 0;
    while (done < out.size()) {
      const uint64_t sector = (in_block + done) / sector_size_;
      const uint64_t n = std::min<uint64_t>(out.size() - done,
                                            (sector + 1) * sector_size_ - (in_block + done));
      bool present = false;
      if ((bitmap & kBatStateMask) == kFullyPresent) {
        const uint64_t bit = first_sector + sector;
        uint8_t byte;
        QK_TRY(file_->read((bitmap & kBatOffsetMask) + bit / 8, ByteSpan(&byte, 1)));
        present = byte >> (bit % 8) & 1;
      }
      ByteSpan piece = out.subspan(done, n);
      if (present)
        QK_TRY(file_->read(host + in_block + done, piece));
      else
        std::memset(piece.data(), 0, n);
      done += n;
    }
    return {};
  }

  // A new block goes at the end of the file, on a MiB boundary, which the
  // file grows over (reading as zeroes). Its BAT entry is written only by
  // sync(), after a flush of the file: so the entry on disk never names a
  // block whose data, or the file's growth over it, may not be there yet.
  // A crash before sync() leaves the block unreferenced space at the end
  // (nothing acknowledged by a flush is lost: flush calls sync() first).
  Result<uint64_t> allocate(uint64_t block) override {
    const uint64_t at = next_free_;
    QK_TRY(file_->resize(at + block_size_));
    bat_[index(block)] = at | kFullyPresent;
    pending_.push_back(index(block));
    next_free_ = at + block_size_;
    return at;
  }

  Status sync() override {
    if (pending_.empty()) return {};
    QK_TRY(file_->flush());
    std::sort(pending_.begin(), pending_.end());
    for (size_t i = 0; i < pending_.size();) {
      // Runs of neighbouring entries in one write.
      size_t j = i + 1;
      while (j < pending_.size() && pending_[j] == pending_[j - 1] + 1) ++j;
      std::vector<uint8_t> raw((j - i) * 8);
      for (size_t k = i; k < j; ++k) store_le64(&raw[(k - i) * 8], bat_[pending_[k]]);
      QK_TRY(file_->write(bat_offset_ + pending_[i] * 8, raw));
      i = j;
    }
    pending_.clear();
    return {};
  }

 private:
  std::shared_ptr<BlockDevice> file_;
  std::vector<uint64_t> bat_;
  const uint64_t bat_offset_;
  const uint32_t block_size_, sector_size_, chunk_ratio_;
  uint64_t next_free_;
  std::vector<uint64_t> pending_;  // BAT indexes allocated since the last sync
};

// Reads the BAT and checks every present block and sector bitmap lies in
// the file, clear of the metadata and of each other. Returns where a new
// block would go.
Result<uint64_t> load_bat(BlockDevice& file, const Parsed& p, std::vector<uint64_t>& bat,
                          bool& partial) {
  const uint64_t file_size = file.info().size;
  std::vector<uint8_t> raw(p.bat_entries * 8);
  QK_TRY(file.read(p.bat.offset, raw));
  bat.resize(p.bat_entries);
  const VhdxDetails& d = p.details;
  std::vector<std::pair<uint64_t, uint64_t>> used;  // (start, end)
  std::vector<std::pair<uint64_t, uint64_t>> fixed{{0, kHeaderSectionSize},
                                                   {p.header.log_offset, p.header.log_length},
                                                   {p.bat.offset, p.bat.length},
                                                   {p.metadata.offset, p.metadata.length}};
  uint64_t end = kHeaderSectionSize;
  for (const auto& [start, length] : fixed) end = std::max(end, start + length);
  partial = false;
  for (uint64_t i = 0; i < p.bat_entries; ++i) {
    const uint64_t e = load_le64(&raw[i * 8]);
    bat[i] = e;
    const bool bitmap = (i + 1) % (p.chunk_ratio + 1) == 0;
    const uint32_t state = e & kBatStateMask;
    const uint64_t offset = e & kBatOffsetMask;
    uint64_t length = 0;
    std::string name;
    if (bitmap) {
      name = "VHDX sector bitmap entry " + num(i / (p.chunk_ratio + 1));
      if (state == kFullyPresent)
        length = MiB;
      else if (state != kNotPresent)
        return make_error(EINVAL, name + " has state " + num(state) + " (0 or 6 expected)");
    } else {
      const uint64_t block = i - i / (p.chunk_ratio + 1);
      name = "VHDX BAT entry for block " + num(block);
      switch (state) {
        case kNotPresent:
        case kUndefined:
        case kZero:
        case kUnmapped: break;
        case kPartiallyPresent: partial = true; [[fallthrough]];
        case kFullyPresent:
          // Only the part of the last block inside the disk must exist.
          length = std::min<uint64_t>(d.block_size, d.virtual_size - block * d.block_size);
          break;
        default: return make_error(EINVAL, name + " has unknown state " + num(state));
      }
    }
    if (length == 0) continue;
    if (e & ~(kBatOffsetMask | kBatStateMask))
      return make_error(EINVAL, name + " has reserved bits set");
    if (offset > file_size || file_size - offset < length)
      return make_error(EINVAL, name + " (offset " + num(offset) + ") points past the end of the file");
    for (const auto& [start, n] : fixed)
      if (overlaps(offset, length, start, n))
        return make_error(EINVAL, name + " (offset " + num(offset) +
                                      ") overlaps the headers, the log, the BAT or the metadata");
    used.emplace_back(offset, offset + length);
  }
  std::sort(used.begin(), used.end());
  for (size_t k = 1; k < used.size(); ++k)
    if (used[k].first < used[k - 1].second)
      return make_error(EINVAL, "two VHDX blocks overlap in the file at offset " + num(used[k].first));
  if (!used.empty()) end = std::max(end, used.back().second);
  end = std::max(end, file_size);
  return (end + MiB - 1) / MiB * MiB;
}

}  // namespace

bool looks_like_vhdx(BlockDevice& file) {
  uint8_t sig[8];
  if (file.info().size < 8 || !file.read(0, sig).ok()) return false;
  return std::memcmp(sig, "vhdxfile", 8) == 0;
}

Result<VhdxDetails> probe_vhdx(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(Parsed p, parse(file));
  QK_TRY(parse_layout(file, p));
  return p.details;
}

Result<std::unique_ptr<BlockDevice>> open_vhdx(std::shared_ptr<BlockDevice> file, bool read_only) {
  QK_ASSIGN_OR_RETURN(Parsed p, parse(*file));
  if (!read_only && file->info().read_only) return make_error(EROFS, "the VHDX file is read-only");
  std::shared_ptr<BlockDevice> data = file;
  if (p.details.log_dirty) {
    QK_ASSIGN_OR_RETURN(LogReplay replay, read_log(*file, p.header));
    if (read_only) {
      // Replay into memory: a read-only open never writes the file.
      data = replay_overlay(file, std::move(replay));
    } else {
      // The log's writes reach the disk (apply_log flushes) before the
      // headers stop naming the log, so a crash in between replays again.
      QK_TRY(apply_log(*file, replay));
      p.header.log = Guid{};
    }
  }
  QK_TRY(parse_layout(*data, p));
  std::vector<uint64_t> bat;
  bool partial = false;
  QK_ASSIGN_OR_RETURN(uint64_t next_free, load_bat(*data, p, bat, partial));
  if (partial && !read_only)
    return make_error(ENOTSUP, "VHDX image has partially present blocks (sector bitmaps); "
                               "qcowkit opens such images read-only");
  if (!read_only) {
    // Only once the image is known good, and before the first write: a new
    // file write GUID (and data write GUID, since writes may follow) in
    // both headers, each written and flushed in turn, as the spec asks.
    // A log replayed above stops being named here, after its writes are
    // on disk; a crash in between replays it again, which is harmless.
    p.header.file_write = random_guid();
    p.header.data_write = random_guid();
    for (int i = 0; i < 2; ++i) {
      ++p.header.sequence;
      QK_ASSIGN_OR_RETURN(p.current, write_next_header(*file, p.header, p.current));
    }
  }
  auto map = std::make_unique<VhdxMap>(data, p, std::move(bat), next_free);
  return std::unique_ptr<BlockDevice>(std::make_unique<BlockMapImage>(
      data, std::move(map), p.details.virtual_size, read_only, kName));
}

Result<std::unique_ptr<BlockDevice>> create_vhdx(std::shared_ptr<BlockDevice> file,
                                                 const VhdxCreateOptions& options) {
  const uint64_t size = (options.size + 511) / 512 * 512;
  if (size > kMaxVirtualSize)
    return make_error(EFBIG, "VHDX images are at most 64 TiB; " + num(options.size) + " bytes asked for");
  uint64_t block_size = options.block_size ? options.block_size : vhdx_default_block_size(size);
  if (block_size < kMinBlockSize || block_size > kMaxBlockSize || (block_size & (block_size - 1)))
    return make_error(EINVAL, "VHDX block size " + num(block_size) +
                                  " is not a power of two from 1 MiB to 256 MiB");
  const uint64_t log_size = (uint64_t{std::max<uint32_t>(options.log_size, 1)} + MiB - 1) / MiB * MiB;
  if (log_size > 256 * MiB)
    return make_error(EINVAL, "VHDX log size " + num(options.log_size) + " is over 256 MiB");
  const uint64_t chunk_ratio = kSectorsPerChunk * 512 / block_size;
  const uint64_t payload = (size + block_size - 1) / block_size;
  if (payload > kMaxPayloadBlocks)
    return make_error(EFBIG, "VHDX image of " + num(payload) + " blocks of " + num(block_size) +
                                 " bytes is over the limit of " + num(kMaxPayloadBlocks) +
                                 " blocks; use a larger block_size");
  const uint64_t entries = payload ? payload + (payload - 1) / chunk_ratio : 0;
  // qemu-img's layout: header section, log at 1 MiB, BAT, metadata, data.
  const uint64_t log_offset = kHeaderSectionSize;
  const uint64_t bat_offset = log_offset + log_size;
  // qemu-img counts the BAT of an empty disk as (2^32 - 1) / chunk_ratio
  // entries (an unsigned wrap) and refuses to open a smaller region: give
  // it that much (sparse: the file is never written there).
  const uint64_t counted = payload ? entries : 0xffffffffull / chunk_ratio;
  const uint64_t bat_length = std::max<uint64_t>(MiB, (counted * 8 + MiB - 1) / MiB * MiB);
  const uint64_t meta_offset = bat_offset + bat_length;
  const uint64_t data_offset = meta_offset + MiB;

  // File identifier: signature and creator (UTF-16).
  std::vector<uint8_t> id(8 + 512, 0);
  std::memcpy(id.data(), "vhdxfile", 8);
  const char creator[] = "qcowkit";
  for (size_t i = 0; creator[i]; ++i) id[8 + 2 * i] = uint8_t(creator[i]);

  Header h;
  h.sequence = std::random_device{}() & 0xffff;
  h.file_write = random_guid();
  h.data_write = random_guid();
  h.log_length = uint32_t(log_size);
  h.log_offset = log_offset;

  std::vector<uint8_t> regions(kRegionTableSize, 0);
  store_le32(&regions[0], kRegiSig);
  store_le32(&regions[8], 2);
  auto region = [&](int i, const Guid& g, uint64_t offset, uint64_t length) {
    uint8_t* e = &regions[16 + i * 32];
    std::memcpy(e, g.data(), 16);
    store_le64(e + 16, offset);
    store_le32(e + 24, uint32_t(length));
    store_le32(e + 28, 1);  // required
  };
  region(0, kBatRegion, bat_offset, bat_length);
  region(1, kMetadataRegion, meta_offset, MiB);
  store_checksum(regions.data(), regions.size(), 4);

  std::vector<uint8_t> meta(kMetadataTableSize + 40, 0);
  store_le64(&meta[0], kMetadataSig);
  store_le16(&meta[10], 5);
  uint32_t item_at = kMetadataTableSize;
  auto item = [&](int i, const Guid& g, uint32_t length, bool virtual_disk) {
    uint8_t* e = &meta[32 + i * 32];
    std::memcpy(e, g.data(), 16);
    store_le32(e + 16, item_at);
    store_le32(e + 20, length);
    store_le32(e + 24, 4 | (virtual_disk ? 2 : 0));  // required (and virtual disk)
    uint8_t* v = &meta[item_at];
    item_at += length;
    return v;
  };
  uint8_t* params = item(0, kFileParameters, 8, false);
  store_le32(params, uint32_t(block_size));
  store_le32(params + 4, options.fixed ? 1 : 0);  // leave blocks allocated
  store_le64(item(1, kVirtualDiskSize, 8, true), size);
  const Guid page83 = random_guid();
  std::memcpy(item(2, kPage83, 16, true), page83.data(), 16);
  store_le32(item(3, kLogicalSectorSize, 4, true), 512);
  store_le32(item(4, kPhysicalSectorSize, 4, true), 512);

  // Fixed: block i at data_offset + i * block_size (the file ends with the
  // disk, as qemu-img makes it). Dynamic: no block yet.
  std::vector<uint8_t> bat(entries * 8, 0);
  const uint32_t unwritten = options.block_state_zero ? kZero : kNotPresent;
  for (uint64_t b = 0; b < payload; ++b) {
    const uint64_t i = b + b / chunk_ratio;
    store_le64(&bat[i * 8], options.fixed ? (data_offset + b * block_size) | kFullyPresent : unwritten);
  }
  QK_TRY(file->resize(options.fixed ? data_offset + size : data_offset));
  QK_TRY(file->write(0, id));
  QK_TRY(file->write(kRegionTable1At, regions));
  QK_TRY(file->write(kRegionTable2At, regions));
  QK_TRY(file->write(meta_offset, meta));
  if (!bat.empty()) QK_TRY(file->write(bat_offset, bat));
  // The headers last, after everything they lead to is on disk.
  QK_TRY(file->flush());
  QK_TRY(file->write(kHeader1At, build_header(h)));
  ++h.sequence;
  QK_TRY(file->write(kHeader2At, build_header(h)));
  QK_TRY(file->flush());
  return open_vhdx(std::move(file), false);
}

}  // namespace qcowkit
