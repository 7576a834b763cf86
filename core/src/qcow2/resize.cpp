// Growing (with L1 table growth and relocation) and, when asked, shrinking.
#include <algorithm>

#include "qcow2/image_impl.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

// Makes the L1 table hold `entries`. Within its clusters the new entries are
// zeroed on disk before the header grows l1_size; otherwise a new table is
// written elsewhere and the header switched to it in one write.
Status Qcow2Image::Impl::grow_l1_locked(uint64_t entries) {
  if (entries <= l1_.size()) return {};
  if (entries * 8 > kMaxL1Bytes)
    return make_error(EFBIG, "the L1 table would be larger than 32 MiB");
  if (entries <= l1_capacity_) {
    std::vector<uint8_t> zeroes((entries - l1_.size()) * 8, 0);
    QK_TRY(file_->write(header_.l1_table_offset + l1_.size() * 8, zeroes));
    QK_TRY(file_->flush());
    uint8_t field[4];
    store_be32(field, static_cast<uint32_t>(entries));
    QK_TRY(write_header_field_locked(kOffL1Size, field));
    QK_TRY(file_->flush());
    l1_.resize(entries, 0);
    header_.l1_size = static_cast<uint32_t>(entries);
    return {};
  }
  // Everything the new table will point at must be on disk first.
  QK_TRY(flush_locked());
  const uint64_t clusters = (entries * 8 + cluster_size_ - 1) / cluster_size_;
  QK_ASSIGN_OR_RETURN(uint64_t offset, allocate_clusters_locked(clusters));
  QK_TRY(write_dirty_refcounts_locked());
  std::vector<uint8_t> raw(clusters * cluster_size_, 0);
  for (uint64_t i = 0; i < l1_.size(); ++i) store_be64(raw.data() + i * 8, l1_[i]);
  QK_TRY(file_->write(offset, raw));
  QK_TRY(file_->flush());
  uint8_t field[12];
  store_be32(field, static_cast<uint32_t>(entries));
  store_be64(field + 4, offset);
  QK_TRY(write_header_field_locked(kOffL1Size, field));
  QK_TRY(file_->flush());
  const uint64_t old_offset = header_.l1_table_offset;
  const uint64_t old_clusters = (l1_capacity_ * 8) / cluster_size_;
  header_.l1_table_offset = offset;
  header_.l1_size = static_cast<uint32_t>(entries);
  l1_.resize(entries, 0);
  l1_capacity_ = clusters * cluster_size_ / 8;
  dirty_l1_.clear();
  for (uint64_t c = 0; c < clusters; ++c) metadata_clusters_.insert(offset / cluster_size_ + c);
  if (old_clusters) defer_decrement_locked(old_offset, old_clusters);
  return {};
}

Status Qcow2Image::Impl::resize(uint64_t new_size, bool allow_shrink) {
  QK_TRY(check_open("resize", true));
  if (new_size % kSectorSize != 0)
    return make_error(EINVAL, "resize: the new size must be a multiple of 512 bytes");
  if (new_size > static_cast<uint64_t>(INT64_MAX))
    return make_error(EINVAL, "resize: the new size is too large");
  uint64_t old_size;
  bool has_snapshots;
  {
    MutexLock lock(mutex_);
    old_size = header_.size;
    has_snapshots = !snapshots_.entries.empty();
    if (header_.bitmaps && header_.bitmaps->nb_bitmaps > 0 &&
        (header_.autoclear_features & kAutoclearBitmaps) && new_size != old_size)
      return make_error(ENOTSUP, "resize: the image has persistent bitmaps, which would no longer "
                                 "cover it (remove them first, as with qemu-img)");
  }
  if (new_size < old_size) {
    if (!allow_shrink)
      return make_error(EINVAL, "resize: shrinking from " + std::to_string(old_size) + " to " +
                                    std::to_string(new_size) + " bytes must be asked for explicitly");
    if (has_snapshots)
      return make_error(ENOTSUP, "resize: cannot shrink an image that has internal snapshots");
    // Free everything past the new end, then zero the tail of the last
    // cluster so that growing again later reads zeroes there.
    const uint64_t cluster_end = (new_size + cluster_size_ - 1) / cluster_size_ * cluster_size_;
    if (cluster_end < old_size)
      QK_TRY(zero_or_discard(cluster_end, old_size - cluster_end, true, {}));
    if (new_size < cluster_end)
      QK_TRY(zero_or_discard(new_size, std::min(cluster_end, old_size) - new_size, false, {}));
  }
  {
    WriterLock gate(io_gate_);
    MutexLock lock(mutex_);
    QK_TRY(prepare_first_write_locked());
    if (new_size > old_size) QK_TRY(grow_l1_locked(header_.l1_entries_for(new_size)));
    if (new_size < old_size) {
      // L2 tables wholly past the end are empty now: let them go.
      for (uint64_t i = header_.l1_entries_for(new_size); i < l1_.size(); ++i) {
        const uint64_t l2 = l1_[i] & kOffsetMask;
        if (l2 == 0) continue;
        l1_[i] = 0;
        dirty_l1_.insert(i);
        defer_decrement_locked(l2);
      }
    }
    QK_TRY(flush_locked());
    uint8_t field[8];
    store_be64(field, new_size);
    QK_TRY(write_header_field_locked(kOffSize, field));
    QK_TRY(file_->flush());
    header_.size = new_size;
  }
  return apply_deferred_decrements();
}

}  // namespace qcowkit
