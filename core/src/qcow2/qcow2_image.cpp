// Qcow2Image: the public face; every call forwards to Impl.
#include "qcow2/image_impl.hpp"
#include "util/endian.hpp"

namespace qcowkit {

Qcow2Image::Qcow2Image(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Qcow2Image::~Qcow2Image() {
  if (impl_) (void)impl_->close();
}

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::open(std::shared_ptr<BlockDevice> file,
                                                     const Qcow2OpenOptions& options) {
  if (!file) return make_error(EINVAL, "open: no file given");
  auto impl = std::make_unique<Impl>(std::move(file), options);
  QK_TRY(impl->load(options));
  return std::unique_ptr<Qcow2Image>(new Qcow2Image(std::move(impl)));
}

Result<Qcow2Details> Qcow2Image::probe(BlockDevice& file) {
  const uint64_t file_size = file.info().size;
  std::vector<uint8_t> prefix(std::min<uint64_t>(file_size, 512));
  QK_TRY(file.read(0, prefix));
  prefix.resize(qcow2::needed_prefix(prefix, file_size));
  QK_TRY(file.read(0, prefix));
  QK_ASSIGN_OR_RETURN(qcow2::Header h, qcow2::parse_header(prefix, file_size));
  Qcow2Details d;
  d.version = static_cast<int>(h.version);
  d.virtual_size = h.size;
  d.cluster_size = static_cast<uint32_t>(h.cluster_size());
  d.refcount_bits = h.refcount_bits();
  d.incompatible_features = h.incompatible_features;
  d.compatible_features = h.compatible_features;
  d.autoclear_features = h.autoclear_features;
  d.dirty = h.incompatible_features & qcow2::kIncompatDirty;
  d.corrupt = h.incompatible_features & qcow2::kIncompatCorrupt;
  d.lazy_refcounts = h.compatible_features & qcow2::kCompatLazyRefcounts;
  d.extended_l2 = h.extended_l2();
  d.bitmaps_consistent = h.autoclear_features & qcow2::kAutoclearBitmaps;
  d.compression_type = static_cast<CompressionType>(h.compression_type);
  d.backing_file = h.backing_file;
  d.backing_format = h.backing_format;
  d.data_file = h.data_file;
  d.data_file_raw = h.autoclear_features & qcow2::kAutoclearDataFileRaw;
  // The snapshot table and the bitmap directory are bounded and validated
  // as open() does; a broken snapshot table is an error, as in qemu-img
  // info, while bitmaps are described only when their directory is sound.
  QK_ASSIGN_OR_RETURN(qcow2::SnapshotTable snapshots, qcow2::read_snapshot_table(file, h));
  for (const qcow2::SnapshotEntry& s : snapshots.entries) d.snapshots.push_back(s.info);
  if (auto dir = h.bitmaps ? qcow2::read_bitmap_directory(file, h) : Result<qcow2::BitmapDirectory>(qcow2::BitmapDirectory{}); dir.ok())
    for (const qcow2::BitmapEntry& b : dir->entries) d.bitmaps.push_back(b.info);
  return d;
}

bool Qcow2Image::looks_like_qcow2(BlockDevice& file) {
  if (file.info().size < 4) return false;
  uint8_t magic[4];
  return file.read(0, magic).ok() && load_be32(magic) == qcow2::kMagic;
}

DeviceInfo Qcow2Image::info() const {
  MutexLock lock(impl_->mutex_);
  return DeviceInfo{impl_->header_.size, 1, impl_->read_only_};
}

Status Qcow2Image::read(uint64_t offset, ByteSpan buffer) { return impl_->read(offset, buffer); }

Status Qcow2Image::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  return impl_->write(offset, data, flags.fua);
}

Status Qcow2Image::flush() { return impl_->flush(); }

Status Qcow2Image::discard(uint64_t offset, uint64_t length) {
  return impl_->zero_or_discard(offset, length, true, {});
}

Status Qcow2Image::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  return impl_->zero_or_discard(offset, length, false, flags);
}

Status Qcow2Image::resize(uint64_t new_size) { return impl_->resize(new_size, false); }

Status Qcow2Image::resize(uint64_t new_size, bool allow_shrink) {
  return impl_->resize(new_size, allow_shrink);
}

Result<std::vector<Extent>> Qcow2Image::extents(uint64_t offset, uint64_t length) {
  return impl_->extents(offset, length);
}

Status Qcow2Image::close() { return impl_->close(); }

Status Qcow2Image::write_compressed(uint64_t offset, ConstByteSpan data) {
  return impl_->write_compressed(offset, data);
}

Status Qcow2Image::store_compressed(uint64_t offset, ConstByteSpan packed) {
  return impl_->store_compressed(offset, packed);
}

Result<std::vector<MapEntry>> Qcow2Image::map(uint64_t offset, uint64_t length) {
  return impl_->map(offset, length);
}

Result<CheckReport> Qcow2Image::check(RepairMode repair) { return impl_->check(repair); }

Status Qcow2Image::compact() { return impl_->compact(); }

Status Qcow2Image::create_snapshot(const std::string& name) { return impl_->create_snapshot(name); }

Status Qcow2Image::delete_snapshot(const std::string& id_or_name) {
  return impl_->delete_snapshot(id_or_name);
}

Result<std::vector<Extent>> Qcow2Image::bitmap_ranges(const std::string& name) {
  return impl_->bitmap_ranges(name);
}

Status Qcow2Image::add_bitmap(const std::string& name, uint64_t granularity, bool enabled) {
  Impl::BitmapRequest r{Impl::BitmapRequest::add, name};
  r.granularity = granularity;
  r.enabled = enabled;
  return impl_->change_bitmaps("bitmap add", r);
}

Status Qcow2Image::remove_bitmap(const std::string& name) {
  return impl_->change_bitmaps("bitmap remove", Impl::BitmapRequest{Impl::BitmapRequest::remove, name});
}

Status Qcow2Image::clear_bitmap(const std::string& name) {
  return impl_->change_bitmaps("bitmap clear", Impl::BitmapRequest{Impl::BitmapRequest::clear, name});
}

Status Qcow2Image::enable_bitmap(const std::string& name, bool enabled) {
  using R = Impl::BitmapRequest;
  return impl_->change_bitmaps(enabled ? "bitmap enable" : "bitmap disable",
                               R{enabled ? R::enable : R::disable, name});
}

Status Qcow2Image::merge_bitmap(const std::string& target, const std::string& source) {
  Impl::BitmapRequest r{Impl::BitmapRequest::merge, target};
  r.source_name = &source;
  return impl_->change_bitmaps("bitmap merge", r);
}

Status Qcow2Image::merge_bitmap_ranges(const std::string& target, const std::vector<Extent>& source,
                                       uint64_t source_size) {
  Impl::BitmapRequest r{Impl::BitmapRequest::merge, target};
  r.source_ranges = &source;
  r.source_size = source_size;
  return impl_->change_bitmaps("bitmap merge", r);
}

Status Qcow2Image::set_backing_file(const std::string& name, const std::string& format,
                                    std::shared_ptr<BlockDevice> backing) {
  return impl_->set_backing_file(name, format, std::move(backing));
}

Status Qcow2Image::apply_snapshot(const std::string& id_or_name) {
  return impl_->apply_snapshot(id_or_name);
}

bool Qcow2Image::can_zero_fast(uint64_t offset, uint64_t length) {
  MutexLock lock(impl_->mutex_);
  return impl_->can_zero_fast(offset, length);
}

Qcow2Details Qcow2Image::details() const { return impl_->details(); }

uint32_t Qcow2Image::cluster_size() const { return static_cast<uint32_t>(impl_->cluster_size_); }

bool Qcow2Image::is_corrupt() const {
  MutexLock lock(impl_->mutex_);
  return impl_->corrupt_ || (impl_->header_.incompatible_features & qcow2::kIncompatCorrupt);
}

}  // namespace qcowkit
