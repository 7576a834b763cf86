// Opening an image: read the header, then every table the image needs at
// once (L1, refcount table, snapshot table, bitmap directory), validating
// each before it is trusted. Tables are read only when they lie inside the
// file, so memory follows the file's real size, not what the header claims.
#include <algorithm>

#include "qcow2/image_impl.hpp"
#include "util/hex.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {

Error invalid(const std::string& what) { return make_error(EINVAL, "invalid qcow2 image: " + what); }


}  // namespace

Qcow2Image::Impl::Impl(std::shared_ptr<BlockDevice> file, const Qcow2OpenOptions& options)
    : file_(std::move(file)), data_file_(file_), backing_(options.backing),
      codecs_(options.codecs ? options.codecs : &builtin_codecs()),
      read_only_(options.read_only || file_->info().read_only), cache_(8) {}

Status Qcow2Image::Impl::load(const Qcow2OpenOptions& options) {
  const uint64_t file_size = file_->info().size;
  std::vector<uint8_t> prefix(std::min<uint64_t>(file_size, 512));
  QK_TRY(file_->read(0, prefix));
  if (prefix.size() < 4 || load_be32(prefix.data()) != kMagic)
    return make_error(EINVAL, "not a qcow2 image (bad magic)");
  prefix.resize(needed_prefix(prefix, file_size));
  QK_TRY(file_->read(0, prefix));
  QK_ASSIGN_OR_RETURN(header_, parse_header(prefix, file_size));

  cluster_bits_ = header_.cluster_bits;
  cluster_size_ = header_.cluster_size();
  l2_entries_ = header_.l2_entries();
  refcount_bits_ = header_.refcount_bits();
  refblock_entries_ = header_.refcount_block_entries();
  if (header_.extended_l2()) subcluster_size_ = cluster_size_ / kSubclusters;
  cache_ = MetadataCache(options.metadata_cache_bytes / cluster_size_);

  if (header_.incompatible_features & kIncompatCorrupt && !read_only_)
    return make_error(EROFS, "the image is marked corrupt; it can only be opened read-only "
                             "(repair it with `qcowkit check -r all` or `qemu-img check -r all`)");
  if (header_.incompatible_features & kIncompatDataFile) {
    if (!options.data_file)
      return make_error(ENOTSUP, "the image keeps its data in the external file '" +
                                     header_.data_file +
                                     "', which is only used when passed explicitly");
    if (!read_only_)
      return make_error(ENOTSUP, "images with an external data file can only be opened read-only");
    data_file_ = options.data_file;
  }

  // L1 table.
  const uint64_t l1_bytes = uint64_t{header_.l1_size} * 8;
  if (l1_bytes > 0 && (header_.l1_table_offset >= file_size ||
                       l1_bytes > file_size - header_.l1_table_offset))
    return invalid("the L1 table at " + hex(header_.l1_table_offset) + " lies past the end of the file");
  std::vector<uint8_t> raw(l1_bytes);
  QK_TRY(file_->read(header_.l1_table_offset, raw));
  l1_.resize(header_.l1_size);
  l1_capacity_ = ((l1_bytes + cluster_size_ - 1) / cluster_size_) * cluster_size_ / 8;
  for (uint64_t i = 0; i < l1_.size(); ++i) l1_[i] = load_be64(raw.data() + i * 8);

  // Refcount table.
  const uint64_t rt_bytes = uint64_t{header_.refcount_table_clusters} * cluster_size_;
  if (header_.refcount_table_offset >= file_size ||
      rt_bytes > file_size - header_.refcount_table_offset) {
    // QEMU writes whole table clusters, but a file may end inside the last one.
    if (header_.refcount_table_offset >= file_size)
      return invalid("the refcount table lies past the end of the file");
  }
  raw.assign(rt_bytes, 0);
  const uint64_t rt_readable = std::min(rt_bytes, file_size - header_.refcount_table_offset);
  QK_TRY(file_->read(header_.refcount_table_offset, ByteSpan(raw.data(), rt_readable)));
  reftable_.resize(rt_bytes / 8);
  for (uint64_t i = 0; i < reftable_.size(); ++i) reftable_[i] = load_be64(raw.data() + i * 8);

  QK_ASSIGN_OR_RETURN(snapshots_, read_snapshot_table(*file_, header_));
  if (header_.bitmaps) {
    auto dir = read_bitmap_directory(*file_, header_);
    if (dir.ok()) bitmaps_ = std::move(*dir);
    else if (header_.autoclear_features & kAutoclearBitmaps) return std::move(dir).error();
  }

  // Everything that is metadata, so that no data write can land on it and
  // no table can be two things at once.
  auto claim = [this](uint64_t offset, uint64_t bytes, const std::string& what)
                   QK_NO_THREAD_SAFETY_ANALYSIS -> Status {  // part of load()
    for (uint64_t c = offset >> cluster_bits_; c <= (offset + bytes - 1) >> cluster_bits_; ++c)
      if (!metadata_clusters_.insert(c).second)
        return invalid(what + " at " + hex(offset) + " overlaps other metadata");
    return {};
  };
  QK_TRY(claim(0, cluster_size_, "the header"));
  if (l1_bytes) QK_TRY(claim(header_.l1_table_offset, l1_bytes, "the L1 table"));
  QK_TRY(claim(header_.refcount_table_offset, rt_bytes, "the refcount table"));
  if (snapshots_.byte_size) QK_TRY(claim(header_.snapshots_offset, snapshots_.byte_size, "the snapshot table"));
  for (uint64_t i = 0; i < reftable_.size(); ++i) {
    const uint64_t e = reftable_[i];
    if (e == 0) continue;
    if (e & kRefTableReservedMask)
      return invalid("refcount table entry " + std::to_string(i) + " has reserved bits set");
    if (e % cluster_size_ != 0)
      return invalid("refcount block " + hex(e) + " is not cluster aligned");
    if (e >= file_size) return invalid("refcount block " + hex(e) + " lies past the end of the file");
    QK_TRY(claim(e, cluster_size_, "refcount block"));
  }
  for (uint64_t i = 0; i < l1_.size(); ++i) {
    const uint64_t e = l1_[i];
    if (e & kL1ReservedMask)
      return invalid("L1 entry " + std::to_string(i) + " has reserved bits set");
    const uint64_t l2 = e & kOffsetMask;
    if (l2 == 0) continue;
    if (l2 % cluster_size_ != 0) return invalid("L2 table " + hex(l2) + " is not cluster aligned");
    if (l2 >= file_size) return invalid("L2 table " + hex(l2) + " lies past the end of the file");
    QK_TRY(claim(l2, cluster_size_, "L2 table"));
  }
  // Snapshot L1 tables are metadata too (their L2 tables may be shared with
  // the active layer, so those are not claimed twice).
  for (const SnapshotEntry& s : snapshots_.entries)
    if (s.l1_size)
      for (uint64_t c = s.l1_table_offset >> cluster_bits_;
           c <= (s.l1_table_offset + uint64_t{s.l1_size} * 8 - 1) >> cluster_bits_; ++c)
        metadata_clusters_.insert(c);

  if (!options.snapshot.empty()) QK_TRY(load_snapshot_view(options.snapshot));

  if ((header_.incompatible_features & kIncompatDirty) && !read_only_) {
    // Lazy refcounts were in use when the image was last left: its refcounts
    // cannot be trusted until they are rebuilt.
    MutexLock lock(mutex_);
    QK_TRY(rebuild_refcounts_locked(nullptr));
    uint8_t field[8];
    store_be64(field, header_.incompatible_features & ~kIncompatDirty);
    QK_TRY(write_header_field_locked(kOffIncompatible, field));
    header_.incompatible_features &= ~kIncompatDirty;
    QK_TRY(file_->flush());
  }
  // New clusters go at the end of the file and are written whole (data,
  // tables and refcount blocks alike), so the file may set space aside
  // ahead of them.
  if (!read_only_) file_->advise_appends();
  return {};
}

// Makes a snapshot's L1 table the one reads go through (read-only images).
Status Qcow2Image::Impl::load_snapshot_view(const std::string& id_or_name) {
  if (!read_only_)
    return make_error(EINVAL, "snapshot '" + id_or_name + "' can only be opened read-only");
  MutexLock lock(mutex_);
  QK_ASSIGN_OR_RETURN(size_t index, find_snapshot_locked(id_or_name));
  const SnapshotEntry& s = snapshots_.entries[index];
  QK_ASSIGN_OR_RETURN(std::vector<uint64_t> l1, read_l1_locked(s.l1_table_offset, s.l1_size));
  const uint64_t file_size = file_->info().size;
  for (uint64_t i = 0; i < l1.size(); ++i) {
    const uint64_t l2 = l1[i] & kOffsetMask;
    if (l1[i] & kL1ReservedMask)
      return invalid("snapshot '" + id_or_name + "': L1 entry " + std::to_string(i) + " has reserved bits set");
    if (l2 % cluster_size_ != 0 || (l2 != 0 && l2 >= file_size))
      return invalid("snapshot '" + id_or_name + "': L2 table " + hex(l2) + " is misplaced");
  }
  l1_ = std::move(l1);
  header_.size = s.info.virtual_size;
  return {};
}

Status Qcow2Image::Impl::check_open(const char* op, bool mutating) const {
  if (closed_) return make_error(EBADF, std::string(op) + ": the qcow2 image is closed");
  if (mutating && read_only_) return make_error(EROFS, std::string(op) + ": the image is read-only");
  if (mutating && corrupt_)
    return make_error(EIO, std::string(op) + ": the image is corrupt; writes are refused");
  return {};
}

Qcow2Details Qcow2Image::Impl::details() const {
  MutexLock lock(mutex_);
  Qcow2Details d;
  d.version = static_cast<int>(header_.version);
  d.virtual_size = header_.size;
  d.cluster_size = static_cast<uint32_t>(cluster_size_);
  d.refcount_bits = refcount_bits_;
  d.incompatible_features = header_.incompatible_features;
  d.compatible_features = header_.compatible_features;
  d.autoclear_features = header_.autoclear_features;
  d.dirty = header_.incompatible_features & kIncompatDirty;
  d.corrupt = (header_.incompatible_features & kIncompatCorrupt) || corrupt_;
  d.lazy_refcounts = header_.compatible_features & kCompatLazyRefcounts;
  d.extended_l2 = header_.extended_l2();
  d.bitmaps_consistent = header_.autoclear_features & kAutoclearBitmaps;
  d.compression_type = static_cast<CompressionType>(header_.compression_type);
  d.backing_file = header_.backing_file;
  d.backing_format = header_.backing_format;
  d.data_file = header_.data_file;
  d.data_file_raw = header_.autoclear_features & kAutoclearDataFileRaw;
  for (const SnapshotEntry& s : snapshots_.entries) d.snapshots.push_back(s.info);
  for (const BitmapEntry& b : bitmaps_.entries) d.bitmaps.push_back(b.info);
  return d;
}

Status Qcow2Image::Impl::close() {
  if (closed_) return {};
  Status status = read_only_ ? Status{} : flush();
  if (status.ok() && !read_only_) {
    WriterLock gate(io_gate_);
    MutexLock lock(mutex_);
    status = persist_bitmaps_locked();
  }
  closed_ = true;
  MutexLock lock(mutex_);
  cache_.clear();
  return status;
}

}  // namespace qcowkit
