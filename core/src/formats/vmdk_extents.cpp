// VMDK images whose data lives in files a descriptor names: monolithicFlat,
// twoGbMaxExtentFlat, twoGbMaxExtentSparse (and vmfs, monolithicSparse
// with a separate descriptor). The guest disk is the extents one after the
// other; each is a flat file window, a sparse extent (grain tables, read by
// the same code as monolithicSparse) or zeroes.
//
// Extent files are opened only through ImageFiles (formats.hpp), so the
// caller's name policy decides which files may be read; an extent is never
// read as a descriptor, so a descriptor cannot lead to another one (no
// loops), and the opener refuses the descriptor itself as an extent.
#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/block_map_image.hpp"
#include "formats/read_only_image.hpp"
#include "formats/vmdk_extents.hpp"
#include "formats/vmdk_layout.hpp"
#include "util/endian_le.hpp"

namespace qcowkit::formats::vmdk {
namespace {

struct Part {
  uint64_t start = 0, length = 0;  // guest bytes
  std::shared_ptr<BlockDevice> device;  // nullptr: zeroes (a ZERO extent)
  uint64_t device_offset = 0;            // where the part starts in `device`
  std::string name;
  bool owned = false;  // `device` is a sparse extent's image, closed with this one
};

// The extents in guest order. Read-only; thread-safe because nothing in it
// changes after construction and its devices are thread-safe.
class ExtentsImage final : public ReadOnlyImage {
 public:
  ExtentsImage(std::vector<Part> parts, uint64_t size)
      : ReadOnlyImage("vmdk image: images made of a descriptor and extent files"),
        parts_(std::move(parts)), size_(size) {}

  DeviceInfo info() const override { return DeviceInfo{size_, 1, true}; }

  Status read(uint64_t offset, ByteSpan buffer) override {
    QK_TRY(check_request(info(), offset, buffer.size(), false, "read"));
    uint64_t done = 0;
    while (done < buffer.size()) {
      const uint64_t pos = offset + done;
      const Part& p = part_at(pos);
      const uint64_t n = std::min<uint64_t>(p.start + p.length - pos, buffer.size() - done);
      ByteSpan piece = buffer.subspan(done, n);
      if (!p.device) {
        std::memset(piece.data(), 0, n);
      } else {
        Status st = p.device->read(p.device_offset + (pos - p.start), piece);
        if (!st.ok()) return with_context(std::move(st).error(), "vmdk extent '" + p.name + "'");
      }
      done += n;
    }
    return {};
  }

  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    QK_TRY(check_request(info(), offset, length, false, "extents"));
    std::vector<Extent> out;
    if (length == 0) return out;
    // One part per answer at most: callers ask again from where it stops.
    const Part& p = part_at(offset);
    const uint64_t n = std::min<uint64_t>(p.start + p.length - offset, length);
    if (!p.device) {
      out.push_back(Extent{offset, n, ExtentKind::hole});
      return out;
    }
    auto inner = p.device->extents(p.device_offset + (offset - p.start), n);
    if (!inner.ok()) return with_context(std::move(inner).error(), "vmdk extent '" + p.name + "'");
    for (Extent e : *inner) {
      e.offset = e.offset - p.device_offset + p.start;
      // A flat extent is allocated throughout: holes in its file are data
      // that reads as zeroes (qemu-img's map says so too).
      if (!p.owned && e.kind == ExtentKind::hole) e.kind = ExtentKind::zero;
      out.push_back(e);
    }
    if (out.empty()) return make_error(EIO, "vmdk extent '" + p.name + "' reported no extents");
    return out;
  }

  Status close() override {
    // Sparse extents' images; the files themselves belong to the opener.
    Status result;
    for (Part& p : parts_)
      if (p.owned) {
        Status st = p.device->close();
        if (result.ok()) result = st;
      }
    return result;
  }

 private:
  const Part& part_at(uint64_t pos) const {
    auto it = std::upper_bound(parts_.begin(), parts_.end(), pos,
                               [](uint64_t v, const Part& p) { return v < p.start + p.length; });
    return *it;  // callers checked pos < size_
  }

  std::vector<Part> parts_;
  const uint64_t size_;
};

bool is_flat(const std::string& type) { return type == "FLAT" || type == "VMFS"; }
bool is_sparse(const std::string& type) { return type == "SPARSE" || type == "VMFSSPARSE"; }

}  // namespace

bool is_descriptor_file(BlockDevice& file) {
  uint8_t b[21];
  if (file.info().size < sizeof b || !file.read(0, b).ok()) return false;
  return std::memcmp(b, "# Disk DescriptorFile", sizeof b) == 0;
}

Result<Descriptor> read_descriptor_file(BlockDevice& file) {
  const uint64_t size = file.info().size;
  if (size > kMaxDescriptorBytes)
    return make_error(EFBIG, "VMDK descriptor file of " + std::to_string(size) +
                                 " bytes is over the " + std::to_string(kMaxDescriptorBytes >> 20) +
                                 " MiB limit");
  std::string text(size, '\0');
  QK_TRY(file.read(0, ByteSpan(reinterpret_cast<uint8_t*>(text.data()), text.size())));
  text.resize(std::min(text.size(), text.find('\0')));
  QK_ASSIGN_OR_RETURN(Descriptor d, parse_descriptor(text));
  if (d.has_parent || d.parent_cid != 0xffffffff)
    return make_error(ENOTSUP, "differencing VMDK images (with a parent) are not supported");
  static const char* const kTypes[] = {"monolithicFlat", "twoGbMaxExtentFlat",
                                       "twoGbMaxExtentSparse", "monolithicSparse", "vmfs"};
  if (std::none_of(std::begin(kTypes), std::end(kTypes),
                   [&](const char* t) { return d.create_type == t; }))
    return make_error(ENOTSUP, "VMDK create type '" + d.create_type +
                                   "' is not supported in a descriptor file (monolithicFlat, "
                                   "twoGbMaxExtentFlat, twoGbMaxExtentSparse, vmfs are)");
  uint64_t sectors = 0;
  for (const ExtentLine& e : d.extents) {
    // ZERO extents: qemu-img skips their lines, so the disk it reads is
    // smaller than VMware's; neither answer would match the other tool.
    if (e.type == "ZERO")
      return make_error(ENOTSUP, "VMDK ZERO extents are not supported (qemu-img ignores them, "
                                 "VMware counts them: the disk's size is not agreed on)");
    // Other access modes: qemu-img skips their lines too (same size issue).
    if (e.access != "RW")
      return make_error(ENOTSUP, "VMDK extent access '" + e.access + "' for '" + e.file +
                                     "' is not supported (RW is; qemu-img skips other lines)");
    if (e.type == "FLAT" && !e.has_offset)
      return make_error(EINVAL, "VMDK FLAT extent '" + e.file + "' has no offset");
    if (!is_flat(e.type) && !is_sparse(e.type))
      return make_error(ENOTSUP, "VMDK extent type '" + e.type + "' is not supported (FLAT, "
                                                                  "SPARSE, VMFS, VMFSSPARSE are)");
    sectors += e.sectors;  // each at most 2^40 and at most kMaxExtents of them: no overflow
    if (sectors > (uint64_t{1} << 40))
      return make_error(EFBIG, "VMDK extents add up to over 2^40 sectors");
  }
  return d;
}

uint64_t descriptor_sectors(const Descriptor& d) {
  uint64_t sectors = 0;
  for (const ExtentLine& e : d.extents) sectors += e.sectors;
  return sectors;
}

Result<std::unique_ptr<BlockDevice>> open_descriptor_image(BlockDevice& descriptor, bool read_only,
                                                           ImageFiles& files) {
  QK_ASSIGN_OR_RETURN(Descriptor d, read_descriptor_file(descriptor));
  if (!read_only)
    return make_error(EROFS, "VMDK images made of a descriptor and extent files (" + d.create_type +
                                 ") open read-only; convert them to change them");
  std::vector<Part> parts;
  uint64_t at = 0;
  for (const ExtentLine& e : d.extents) {
    Part p;
    p.start = at;
    p.length = e.sectors * 512;
    p.name = e.file;
    if (is_flat(e.type)) {
      QK_ASSIGN_OR_RETURN(p.device, files.open_file(e.file));
      const uint64_t file_size = p.device->info().size;
      p.device_offset = e.offset * 512;
      if (p.device_offset > file_size || file_size - p.device_offset < p.length)
        return make_error(EINVAL, "VMDK flat extent '" + e.file + "' of " + std::to_string(e.sectors) +
                                      " sectors from sector " + std::to_string(e.offset) +
                                      " does not fit its file of " + std::to_string(file_size) + " bytes");
    } else if (is_sparse(e.type)) {
      QK_ASSIGN_OR_RETURN(auto file, files.open_file(e.file));
      auto layout = load_layout(*file, true);
      if (!layout.ok()) return with_context(std::move(layout).error(), "VMDK sparse extent '" + e.file + "'");
      if (layout->header.capacity != e.sectors)
        return make_error(EINVAL, "VMDK sparse extent '" + e.file + "' holds " +
                                      std::to_string(layout->header.capacity) +
                                      " sectors; the descriptor says " + std::to_string(e.sectors));
      auto image = open_sparse_extent(file, std::move(layout).value());
      if (!image.ok()) return with_context(std::move(image).error(), "VMDK sparse extent '" + e.file + "'");
      p.device = std::shared_ptr<BlockDevice>(std::move(image).value());
      p.owned = true;
    }
    at += p.length;
    parts.push_back(std::move(p));
  }
  return std::unique_ptr<BlockDevice>(std::make_unique<ExtentsImage>(std::move(parts), at));
}

}  // namespace qcowkit::formats::vmdk
