// VMDK sparse extents as BlockDevices: grains found through the grain
// directory and tables; compressed grains (streamOptimized) decoded with
// the core's zlib codec.
#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/block_map_image.hpp"
#include "formats/vmdk_extents.hpp"
#include "formats/vmdk_layout.hpp"
#include "formats/vmdk_stream_writer.hpp"
#include "qcowkit/codec.hpp"
#include "qcowkit/vmdk.hpp"
#include "util/endian_le.hpp"

namespace qcowkit {
namespace {

using namespace formats;
using namespace formats::vmdk;

constexpr const char* kName = "vmdk image";

class GrainMap final : public BlockMap {
 public:
  GrainMap(std::shared_ptr<BlockDevice> file, Layout layout)
      : file_(std::move(file)), l_(std::move(layout)) {
    compressed_ = l_.header.flags & kFlagCompressed;
    markers_ = l_.header.flags & kFlagMarkers;
    zero_grains_ = l_.header.flags & kFlagZeroGrain;
  }

  uint64_t block_size() const override { return l_.grain_bytes; }
  bool file_holes_are_zero() const override { return false; }

  BlockLocation locate(uint64_t grain) const override {
    const uint32_t e = grain < l_.grains ? l_.gt[grain] : 0;
    if (e == 0) return {};
    if (e == 1 && zero_grains_) return {BlockLocation::Kind::zero, 0};
    if (compressed_) return {BlockLocation::Kind::special, uint64_t{e} * 512};
    return {BlockLocation::Kind::data, uint64_t{e} * 512};
  }

  Result<uint64_t> allocate(uint64_t grain) override {
    const uint64_t table = grain / kGtEntries;
    if (compressed_) return make_error(EROFS, "compressed VMDK images are read-only");
    if (l_.gd[table] == 0)
      return make_error(ENOTSUP, "grain table " + std::to_string(table) +
                                     " is not allocated; writing would need a new one");
    const uint64_t size = file_->info().size;
    const uint64_t at = (size + 511) / 512 * 512;
    if (at / 512 > UINT32_MAX) return make_error(EFBIG, "the file outgrows 32-bit grain entries");
    QK_TRY(file_->resize(at + l_.grain_bytes));
    uint8_t entry[4];
    store_le32(entry, uint32_t(at / 512));
    const uint64_t slot = (grain % kGtEntries) * 4;
    QK_TRY(file_->write(uint64_t{l_.gd[table]} * 512 + slot, entry));
    if (table < l_.rgd.size() && l_.rgd[table] != 0)
      QK_TRY(file_->write(uint64_t{l_.rgd[table]} * 512 + slot, entry));
    l_.gt[grain] = uint32_t(at / 512);
    return at;
  }

  Status read_special(uint64_t grain, uint64_t offset_in_block, ByteSpan out) override {
    const uint64_t at = uint64_t{l_.gt[grain]} * 512;
    const uint64_t file_size = file_->info().size;
    uint64_t data_at = at, data_len = 0;
    if (markers_) {
      uint8_t marker[12];
      QK_TRY(file_->read(at, marker));
      const uint64_t lba = load_le64(marker);
      data_len = load_le32(marker + 8);
      if (lba != grain * l_.header.grain)
        return make_error(EIO, "VMDK grain " + std::to_string(grain) + " is marked for sector " +
                                   std::to_string(lba));
      data_at = at + 12;
      if (data_len == 0 || data_len > 2 * l_.grain_bytes || data_at > file_size ||
          file_size - data_at < data_len)
        return make_error(EIO, "VMDK compressed grain " + std::to_string(grain) + " of " +
                                   std::to_string(data_len) + " bytes does not fit the file");
    } else {
      data_len = std::min<uint64_t>(2 * l_.grain_bytes, file_size - at);
    }
    const Codec* codec = builtin_codecs().zlib_stream;
    if (!codec) return make_error(ENOTSUP, "this build has no zlib codec for VMDK grains");
    std::vector<uint8_t> packed(data_len), grain_bytes(l_.grain_bytes);
    QK_TRY(file_->read(data_at, packed));
    Status st = codec->decompress(packed, grain_bytes);
    if (!st.ok()) {
      // The last grain of a disk that ends inside it may hold only the
      // disk's bytes.
      const uint64_t tail = l_.header.capacity * 512 - grain * l_.grain_bytes;
      if (tail >= l_.grain_bytes || !codec->decompress(packed, ByteSpan(grain_bytes.data(), tail)).ok())
        return with_context(std::move(st).error(), "VMDK grain " + std::to_string(grain));
      std::fill(grain_bytes.begin() + tail, grain_bytes.end(), 0);
    }
    std::memcpy(out.data(), grain_bytes.data() + offset_in_block, out.size());
    return {};
  }

 private:
  std::shared_ptr<BlockDevice> file_;
  Layout l_;
  bool compressed_ = false, markers_ = false, zero_grains_ = false;
};

bool starts_with_text(const uint8_t* b, const char* text) {
  return std::memcmp(b, text, std::strlen(text)) == 0;
}

}  // namespace

bool looks_like_vmdk(BlockDevice& file) {
  uint8_t b[21];
  if (file.info().size < sizeof b || !file.read(0, b).ok()) return false;
  return load_le32(b) == kMagic || starts_with_text(b, "# Disk DescriptorFile");
}

Result<VmdkDetails> probe_vmdk(BlockDevice& file);

namespace {

Result<Layout> load(BlockDevice& file) {
  uint8_t b[21] = {};
  if (file.info().size >= sizeof b) QK_TRY(file.read(0, b));
  if (starts_with_text(b, "# Disk DescriptorFile"))
    return make_error(ENOTSUP, "VMDK descriptor files, whose extents live in other files "
                               "(monolithicFlat, twoGbMaxExtent...), are opened through the image "
                               "opener (open_named_image), which opens their extent files");
  return load_layout(file);
}

}  // namespace

Result<VmdkDetails> probe_vmdk(BlockDevice& file) {
  if (is_descriptor_file(file)) {
    // What the descriptor says; the extents are not opened.
    QK_ASSIGN_OR_RETURN(Descriptor d, read_descriptor_file(file));
    VmdkDetails details;
    details.virtual_size = descriptor_sectors(d) * 512;
    details.create_type = d.create_type;
    details.cid = d.cid;
    details.parent_cid = d.parent_cid;
    return details;
  }
  QK_ASSIGN_OR_RETURN(Layout l, load(file));
  VmdkDetails d;
  d.virtual_size = l.header.capacity * 512;
  d.grain_size = l.grain_bytes;
  d.compressed = l.header.flags & kFlagCompressed;
  d.create_type = l.descriptor.create_type;
  d.cid = l.descriptor.cid;
  d.parent_cid = l.descriptor.parent_cid;
  return d;
}

Result<std::unique_ptr<BlockDevice>> open_vmdk(std::shared_ptr<BlockDevice> file, bool read_only) {
  QK_ASSIGN_OR_RETURN(Layout l, load(*file));
  if (!read_only && (l.header.flags & kFlagCompressed))
    return make_error(EROFS, "streamOptimized (compressed) VMDK images open read-only; convert "
                             "to monolithicSparse or qcow2 to change them");
  const uint64_t size = l.header.capacity * 512;
  auto map = std::make_unique<GrainMap>(file, std::move(l));
  return std::unique_ptr<BlockDevice>(
      std::make_unique<BlockMapImage>(file, std::move(map), size, read_only, kName));
}

Result<std::unique_ptr<BlockDevice>> formats::vmdk::open_sparse_extent(
    std::shared_ptr<BlockDevice> file, Layout layout) {
  if (layout.header.flags & kFlagCompressed)
    return make_error(ENOTSUP, "compressed grains in an extent of a descriptor file are not supported");
  const uint64_t size = layout.header.capacity * 512;
  auto map = std::make_unique<GrainMap>(file, std::move(layout));
  return std::unique_ptr<BlockDevice>(
      std::make_unique<BlockMapImage>(file, std::move(map), size, true, kName));
}

Result<std::unique_ptr<BlockDevice>> open_vmdk_with_files(std::shared_ptr<BlockDevice> file,
                                                          bool read_only, ImageFiles& files) {
  if (is_descriptor_file(*file)) return open_descriptor_image(*file, read_only, files);
  return open_vmdk(std::move(file), read_only);
}

Result<uint64_t> vmdk_descriptor_grain_size(BlockDevice& file, ImageFiles& files) {
  if (!is_descriptor_file(file)) return uint64_t{0};
  QK_ASSIGN_OR_RETURN(Descriptor d, read_descriptor_file(file));
  for (const ExtentLine& e : d.extents) {
    if (e.type != "SPARSE" && e.type != "VMFSSPARSE") continue;
    QK_ASSIGN_OR_RETURN(auto extent, files.open_file(e.file));
    QK_ASSIGN_OR_RETURN(Layout l, load_layout(*extent, true));
    return l.grain_bytes;
  }
  return uint64_t{0};
}

Result<FormatCheckReport> check_vmdk(BlockDevice& file, ImageFiles& files) {
  FormatCheckReport report;
  // qemu-img's words for a grain that starts at or past its file's end,
  // counted in guest sectors; like qemu-img (7.2), the check stops at the
  // first one and fails with EINVAL.
  auto check_sparse = [&](BlockDevice& extent, bool part, uint64_t first_sector,
                          const std::string& name) -> Status {
    std::vector<uint64_t> past_eof;
    auto layout = load_layout(extent, part, &past_eof);
    if (!layout.ok()) return with_context(std::move(layout).error(), name);
    if (!past_eof.empty()) {
      report.messages.push_back("ERROR: cluster offset for sector " +
                                std::to_string(first_sector + past_eof.front() * layout->header.grain) +
                                " points after EOF");
      ++report.corruptions;
      report.failed_errno = EINVAL;
    }
    return {};
  };
  if (!is_descriptor_file(file)) {
    QK_TRY(check_sparse(file, false, 0, "vmdk image"));
    return report;
  }
  QK_ASSIGN_OR_RETURN(Descriptor d, read_descriptor_file(file));
  uint64_t sector = 0;
  for (const ExtentLine& e : d.extents) {
    if (e.type == "SPARSE" || e.type == "VMFSSPARSE") {
      QK_ASSIGN_OR_RETURN(auto extent, files.open_file(e.file));
      QK_TRY(check_sparse(*extent, true, sector, "VMDK sparse extent '" + e.file + "'"));
      if (report.failed_errno) break;
    }
    sector += e.sectors;
  }
  return report;
}

Result<std::unique_ptr<BlockDevice>> create_vmdk(std::shared_ptr<BlockDevice> file,
                                                 const VmdkCreateOptions& options) {
  const Header h = new_header(options.size, options.stream_optimized);
  QK_TRY(write_new_image(*file, h, options.stream_optimized ? "streamOptimized" : "monolithicSparse",
                         options.file_name));
  if (options.stream_optimized) return make_stream_writer(std::move(file), h);
  QK_TRY(file->flush());
  return open_vmdk(std::move(file), false);
}

Result<std::unique_ptr<VmdkStreamWriter>> create_vmdk_stream(ByteSink& sink, const VmdkCreateOptions& options) {
  return make_forward_stream_writer(sink, options.size, options.file_name);
}

}  // namespace qcowkit
