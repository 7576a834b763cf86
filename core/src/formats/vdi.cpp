// VDI images as BlockDevices: the header, the block map, and the data area
// where blocks are appended in the order they are first written.
#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "formats/block_map_image.hpp"
#include "qcowkit/vdi.hpp"
#include "util/endian_le.hpp"

namespace qcowkit {
namespace {

using namespace formats;

constexpr const char* kName = "vdi image";
constexpr uint64_t kHeaderSize = 512;
constexpr uint32_t kSignature = 0xbeda107f;
constexpr uint32_t kVersion11 = 0x00010001;
constexpr uint32_t kTypeDynamic = 1, kTypeStatic = 2;
constexpr uint32_t kBlockSize = 1u << 20;  // the only block size VirtualBox and QEMU use
constexpr uint32_t kUnallocated = 0xffffffff, kDiscarded = 0xfffffffe;
// The largest block map held in memory: 16 Mi blocks, 16 TiB.
constexpr uint64_t kMaxBlocks = 16u << 20;
constexpr char kText[] = "<<< QEMU VM Virtual Disk Image >>>\n";

// Header field offsets (after the 64-byte text).
constexpr size_t kSignatureAt = 64, kVersionAt = 68, kHeaderSizeAt = 72, kTypeAt = 76,
                 kOffsetBmapAt = 340, kOffsetDataAt = 344, kSectorSizeAt = 360,
                 kDiskSizeAt = 368, kBlockSizeAt = 376, kBlockExtraAt = 380, kBlocksAt = 384,
                 kAllocatedAt = 388, kUuidImageAt = 392, kUuidSnapAt = 408, kUuidLinkAt = 424,
                 kUuidParentAt = 440;

struct Header {
  uint32_t type = 0;
  uint64_t offset_bmap = 0, offset_data = 0, disk_size = 0;
  uint32_t blocks = 0, allocated = 0;
};

bool is_zero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

Result<Header> parse_header(BlockDevice& file) {
  const uint64_t file_size = file.info().size;
  if (file_size < kHeaderSize)
    return make_error(EINVAL, "file of " + std::to_string(file_size) +
                                  " bytes is too small for a VDI header");
  uint8_t b[kHeaderSize];
  QK_TRY(file.read(0, b));
  if (load_le32(b + kSignatureAt) != kSignature)
    return make_error(EINVAL, "not a VDI image (bad signature)");
  const uint32_t version = load_le32(b + kVersionAt);
  if (version != kVersion11)
    return make_error(ENOTSUP, "VDI version " + std::to_string(version >> 16) + "." +
                                   std::to_string(version & 0xffff) + " is not supported (1.1 is)");
  Header h;
  h.type = load_le32(b + kTypeAt);
  if (h.type != kTypeDynamic && h.type != kTypeStatic)
    return make_error(ENOTSUP, "VDI image type " + std::to_string(h.type) +
                                   " is not supported (dynamic and static are; undo and "
                                   "differencing images are not)");
  if (!is_zero(b + kUuidLinkAt, 16) || !is_zero(b + kUuidParentAt, 16))
    return make_error(ENOTSUP, "differencing VDI images (with a parent) are not supported");
  if (load_le32(b + kSectorSizeAt) != 512)
    return make_error(EINVAL, "VDI sector size " + std::to_string(load_le32(b + kSectorSizeAt)) +
                                  " is not 512");
  if (load_le32(b + kBlockSizeAt) != kBlockSize)
    return make_error(ENOTSUP, "VDI block size " + std::to_string(load_le32(b + kBlockSizeAt)) +
                                   " is not supported (1 MiB is)");
  if (load_le32(b + kBlockExtraAt) != 0)
    return make_error(ENOTSUP, "VDI images with extra data per block are not supported");
  h.offset_bmap = load_le32(b + kOffsetBmapAt);
  h.offset_data = load_le32(b + kOffsetDataAt);
  h.disk_size = load_le64(b + kDiskSizeAt);
  h.blocks = load_le32(b + kBlocksAt);
  h.allocated = load_le32(b + kAllocatedAt);
  if (h.offset_bmap % 512 || h.offset_data % 512)
    return make_error(EINVAL, "VDI block map or data offset is not sector aligned");
  if (h.blocks > kMaxBlocks)
    return make_error(EFBIG, "VDI block map of " + std::to_string(h.blocks) +
                                 " blocks is over the limit of " + std::to_string(kMaxBlocks));
  if (h.disk_size > uint64_t{h.blocks} * kBlockSize)
    return make_error(EINVAL, "VDI disk size " + std::to_string(h.disk_size) + " needs more than its " +
                                  std::to_string(h.blocks) + " blocks");
  const uint64_t bmap_bytes = uint64_t{h.blocks} * 4;
  if (h.offset_bmap < kHeaderSize || h.offset_bmap > file_size ||
      file_size - h.offset_bmap < bmap_bytes)
    return make_error(EINVAL, "VDI block map at offset " + std::to_string(h.offset_bmap) + " (" +
                                  std::to_string(bmap_bytes) + " bytes) is outside the file");
  if (h.offset_data < h.offset_bmap + bmap_bytes)
    return make_error(EINVAL, "VDI data area at offset " + std::to_string(h.offset_data) +
                                  " overlaps the block map");
  return h;
}

class VdiMap final : public BlockMap {
 public:
  VdiMap(std::shared_ptr<BlockDevice> file, Header header, std::vector<uint32_t> bmap,
         uint32_t next_index)
      : file_(std::move(file)), h_(header), bmap_(std::move(bmap)), next_(next_index) {}

  uint64_t block_size() const override { return kBlockSize; }

  BlockLocation locate(uint64_t block) const override {
    const uint32_t e = block < bmap_.size() ? bmap_[block] : kUnallocated;
    if (e == kUnallocated || e == kDiscarded) return {};  // both read as zeroes
    return {BlockLocation::Kind::data, h_.offset_data + uint64_t{e} * kBlockSize};
  }

  Result<uint64_t> allocate(uint64_t block) override {
    if (next_ >= h_.blocks) return make_error(ENOSPC, "the VDI data area is full");
    const uint64_t at = h_.offset_data + uint64_t{next_} * kBlockSize;
    // Blocks are appended: the file grows over the new one, which reads as
    // zeroes; an image with bytes there already has them zeroed.
    const uint64_t size = file_->info().size;
    if (size > at) QK_TRY(file_->write_zeroes(at, std::min<uint64_t>(size - at, kBlockSize)));
    if (size < at + kBlockSize) QK_TRY(file_->resize(at + kBlockSize));
    uint8_t entry[4];
    store_le32(entry, next_);
    QK_TRY(file_->write(h_.offset_bmap + block * 4, entry));
    bmap_[block] = next_++;
    ++h_.allocated;
    dirty_ = true;
    return at;
  }

  // The allocated count lives in the header; written once per flush.
  Status sync() override {
    if (!dirty_) return {};
    uint8_t count[4];
    store_le32(count, h_.allocated);
    QK_TRY(file_->write(kAllocatedAt, count));
    dirty_ = false;
    return {};
  }

 private:
  std::shared_ptr<BlockDevice> file_;
  Header h_;
  std::vector<uint32_t> bmap_;
  uint32_t next_;  // data-area index of the next block allocated
  bool dirty_ = false;
};

// Reads the block map: every entry in range, inside the file, and unique.
// Returns the data-area index after the last one in use.
Result<uint32_t> load_bmap(BlockDevice& file, const Header& h, std::vector<uint32_t>& bmap) {
  std::vector<uint8_t> raw(uint64_t{h.blocks} * 4);
  QK_TRY(file.read(h.offset_bmap, raw));
  const uint64_t file_size = file.info().size;
  bmap.resize(h.blocks);
  std::vector<bool> used(h.blocks, false);
  uint32_t next = 0;
  for (uint32_t i = 0; i < h.blocks; ++i) {
    const uint32_t e = load_le32(raw.data() + uint64_t{i} * 4);
    bmap[i] = e;
    if (e == kUnallocated || e == kDiscarded) continue;
    if (e >= h.blocks)
      return make_error(EINVAL, "VDI block map entry " + std::to_string(i) + " names data block " +
                                    std::to_string(e) + ", past the " + std::to_string(h.blocks) +
                                    " the image has");
    if (h.offset_data + (uint64_t{e} + 1) * kBlockSize > file_size)
      return make_error(EINVAL, "VDI block map entry " + std::to_string(i) +
                                    " points past the end of the file");
    if (used[e])
      return make_error(EINVAL, "VDI data block " + std::to_string(e) +
                                    " is named by two block map entries");
    used[e] = true;
    next = std::max(next, e + 1);
  }
  return next;
}

}  // namespace

bool looks_like_vdi(BlockDevice& file) {
  uint8_t b[4];
  if (file.info().size < kHeaderSize || !file.read(kSignatureAt, b).ok()) return false;
  return load_le32(b) == kSignature;
}

Result<VdiDetails> probe_vdi(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(Header h, parse_header(file));
  VdiDetails d;
  d.static_image = h.type == kTypeStatic;
  d.virtual_size = h.disk_size;
  d.block_size = kBlockSize;
  d.blocks = h.blocks;
  d.blocks_allocated = h.allocated;
  return d;
}

Result<FormatCheckReport> check_vdi(BlockDevice& file, ImageFiles&) {
  QK_ASSIGN_OR_RETURN(Header h, parse_header(file));
  std::vector<uint8_t> raw(uint64_t{h.blocks} * 4);  // parse_header bounded it
  QK_TRY(file.read(h.offset_bmap, raw));
  FormatCheckReport report;
  // qemu-img check's vdi rules and words: an entry past the block count,
  // a data block two entries share, and an allocated count that is not
  // the header's.
  std::vector<bool> used(h.blocks, false);
  uint32_t allocated = 0;
  for (uint32_t i = 0; i < h.blocks; ++i) {
    const uint32_t e = load_le32(raw.data() + uint64_t{i} * 4);
    if (e == kUnallocated || e == kDiscarded) continue;
    if (e >= h.blocks) {
      report.messages.push_back("ERROR: block index " + std::to_string(i) + " too large, is " +
                                std::to_string(e));
      ++report.corruptions;
      continue;
    }
    ++allocated;
    if (used[e]) {
      report.messages.push_back("ERROR: block index " + std::to_string(e) + " also used by " +
                                std::to_string(e));
      ++report.corruptions;
    }
    used[e] = true;
  }
  if (allocated != h.allocated) {
    report.messages.push_back("ERROR: allocated blocks mismatch, is " + std::to_string(allocated) +
                              ", should be " + std::to_string(h.allocated));
    ++report.corruptions;
  }
  return report;
}

Result<std::unique_ptr<BlockDevice>> open_vdi(std::shared_ptr<BlockDevice> file, bool read_only) {
  QK_ASSIGN_OR_RETURN(Header h, parse_header(*file));
  if (h.disk_size % 512)
    return make_error(EINVAL, "VDI disk size " + std::to_string(h.disk_size) +
                                  " is not a whole number of sectors");
  std::vector<uint32_t> bmap;
  QK_ASSIGN_OR_RETURN(uint32_t next, load_bmap(*file, h, bmap));
  auto map = std::make_unique<VdiMap>(file, h, std::move(bmap), next);
  return std::unique_ptr<BlockDevice>(
      std::make_unique<BlockMapImage>(file, std::move(map), h.disk_size, read_only, kName));
}

Result<std::unique_ptr<BlockDevice>> create_vdi(std::shared_ptr<BlockDevice> file,
                                                const VdiCreateOptions& options) {
  const uint64_t size = (options.size + 511) / 512 * 512;
  const uint64_t blocks = (size + kBlockSize - 1) / kBlockSize;
  if (blocks > kMaxBlocks)
    return make_error(EFBIG, "VDI images are at most " + std::to_string(kMaxBlocks >> 20) +
                                 " TiB here; " + std::to_string(options.size) + " bytes asked for");
  const uint64_t bmap_bytes = (blocks * 4 + 511) / 512 * 512;
  Header h;
  h.type = options.static_image ? kTypeStatic : kTypeDynamic;
  h.offset_bmap = kHeaderSize;
  h.offset_data = kHeaderSize + bmap_bytes;
  h.disk_size = size;
  h.blocks = uint32_t(blocks);
  h.allocated = options.static_image ? h.blocks : 0;

  std::vector<uint8_t> b(kHeaderSize, 0);
  std::memcpy(b.data(), kText, sizeof kText - 1);
  store_le32(&b[kSignatureAt], kSignature);
  store_le32(&b[kVersionAt], kVersion11);
  store_le32(&b[kHeaderSizeAt], 0x180);  // the version 1.1 header's length, as qemu-img writes it
  store_le32(&b[kTypeAt], h.type);
  store_le32(&b[kOffsetBmapAt], uint32_t(h.offset_bmap));
  store_le32(&b[kOffsetDataAt], uint32_t(h.offset_data));
  store_le32(&b[kSectorSizeAt], 512);
  store_le64(&b[kDiskSizeAt], h.disk_size);
  store_le32(&b[kBlockSizeAt], kBlockSize);
  store_le32(&b[kBlocksAt], h.blocks);
  store_le32(&b[kAllocatedAt], h.allocated);
  std::random_device random;
  for (size_t at : {kUuidImageAt, kUuidSnapAt}) {
    for (size_t i = 0; i < 16; i += 4) store_le32(&b[at + i], random());
    b[at + 7] = uint8_t((b[at + 7] & 0x0f) | 0x40);  // version 4 (random), in VirtualBox's byte order
    b[at + 8] = uint8_t((b[at + 8] & 0x3f) | 0x80);
  }

  // Static: block i is data-area block i. Dynamic: nothing allocated.
  std::vector<uint8_t> bmap(bmap_bytes, 0);
  for (uint64_t i = 0; i < blocks; ++i)
    store_le32(&bmap[i * 4], options.static_image ? uint32_t(i) : kUnallocated);
  const uint64_t end = h.offset_data + (options.static_image ? blocks * kBlockSize : 0);
  QK_TRY(file->resize(end));
  QK_TRY(file->write(0, b));
  QK_TRY(file->write(h.offset_bmap, bmap));
  QK_TRY(file->flush());
  return open_vdi(std::move(file), false);
}

}  // namespace qcowkit
