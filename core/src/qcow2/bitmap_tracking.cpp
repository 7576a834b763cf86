// Keeping persistent dirty bitmaps true while the image is written.
//
// As QEMU does: before the first write, every enabled bitmap (the "auto"
// flag) is marked in use on disk; every write, zero and discard then sets
// the bits of the granules it touches, in memory; a clean close ORs those
// bits into the bitmaps' data clusters and clears the in-use flags. A crash
// leaves the flags set, which tells QEMU (and qcowkit) that those bitmaps
// no longer describe the data. Only the bitmap clusters a session touched
// are held in memory, so memory follows what was written, not the image.
//
// Bitmaps qcowkit cannot maintain (a directory it cannot read, an unknown
// bitmap type, extra data) make the first write clear the autoclear bit
// instead, as the spec asks of writers that do not know bitmaps.
#include <algorithm>
#include <cstring>

#include "qcow2/image_impl.hpp"
#include "util/endian.hpp"
#include "util/hex.hpp"

namespace qcowkit {

using namespace qcow2;

// Which bitmaps this session maintains; false when it cannot maintain them
// all (then the autoclear bit must go).
bool Qcow2Image::Impl::plan_bitmap_tracking_locked() {
  tracked_bitmaps_.clear();
  if (!header_.bitmaps || !(header_.autoclear_features & kAutoclearBitmaps)) return false;
  if (bitmaps_.entries.size() != header_.bitmaps->nb_bitmaps) return false;
  for (size_t i = 0; i < bitmaps_.entries.size(); ++i) {
    const BitmapEntry& b = bitmaps_.entries[i];
    if (b.type != kBitmapTypeDirtyTracking || b.extra_size != 0 || b.info.granularity_bits < 9 ||
        b.info.granularity_bits > 31)
      return false;
    if (!(b.info.flags & kBitmapAuto) || (b.info.flags & kBitmapInUse)) continue;  // left as it is
    const uint64_t granules = (header_.size + (uint64_t{1} << b.info.granularity_bits) - 1) >>
                              b.info.granularity_bits;
    const uint64_t needed = (granules + cluster_size_ * 8 - 1) / (cluster_size_ * 8);
    if (needed > b.table_size) return false;  // a table too small for the image
    tracked_bitmaps_.push_back(TrackedBitmap{i, b.info.granularity_bits, {}});
  }
  return true;
}

// Marks the tracked bitmaps in use on disk (before any data changes).
Status Qcow2Image::Impl::set_bitmaps_in_use_locked(bool in_use) {
  if (tracked_bitmaps_.empty()) return {};
  for (const TrackedBitmap& t : tracked_bitmaps_) {
    BitmapEntry& b = bitmaps_.entries[t.entry];
    b.info.flags = in_use ? (b.info.flags | kBitmapInUse) : (b.info.flags & ~kBitmapInUse);
    uint8_t field[4];
    store_be32(field, b.info.flags);
    QK_TRY(file_->write(header_.bitmaps->directory_offset + b.directory_position + 12, field));
  }
  return barrier_locked();
}

void Qcow2Image::Impl::mark_bitmaps_dirty(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  MutexLock lock(bitmap_mutex_);
  const uint64_t bits_per_cluster = cluster_size_ * 8;
  for (TrackedBitmap& t : tracked_bitmaps_) {
    const uint64_t first = offset >> t.granularity_bits;
    const uint64_t last = (offset + length - 1) >> t.granularity_bits;
    for (uint64_t g = first; g <= last;) {
      const uint64_t cluster = g / bits_per_cluster;
      const uint64_t stop = std::min(last + 1, (cluster + 1) * bits_per_cluster);
      std::vector<uint8_t>& bits = t.set_bits[cluster];
      if (bits.empty()) bits.assign(cluster_size_, 0);
      for (uint64_t bit = g - cluster * bits_per_cluster; bit < stop - cluster * bits_per_cluster;) {
        if (bit % 8 == 0 && bit + 8 <= stop - cluster * bits_per_cluster) {
          const uint64_t bytes = (stop - cluster * bits_per_cluster - bit) / 8;
          std::memset(bits.data() + bit / 8, 0xff, bytes);
          bit += bytes * 8;
        } else {
          bits[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
          ++bit;
        }
      }
      g = stop;
    }
  }
}

// ORs this session's bits into each tracked bitmap, then clears the in-use
// flags. New data clusters are counted (durably) before a table names them.
Status Qcow2Image::Impl::persist_bitmaps_locked() {
  if (tracked_bitmaps_.empty() || !bitmaps_in_use_) return {};
  MutexLock bits_lock(bitmap_mutex_);
  for (TrackedBitmap& t : tracked_bitmaps_) {
    const BitmapEntry& b = bitmaps_.entries[t.entry];
    std::vector<uint8_t> raw(uint64_t{b.table_size} * 8);
    QK_TRY(file_->read(b.table_offset, raw));
    bool table_changed = false;
    std::vector<uint8_t> cluster(cluster_size_);
    for (const auto& [index, bits] : t.set_bits) {
      if (index >= b.table_size) continue;
      const uint64_t entry = load_be64(raw.data() + index * 8);
      uint64_t host = entry & kOffsetMask;
      if (host == 0 && (entry & 1)) continue;  // already all ones
      if (host % cluster_size_ != 0)
        return corruption_locked("bitmap '" + b.info.name + "' data cluster " + hex(host) +
                                 " is not cluster aligned");
      if (host) {
        QK_TRY(file_->read(host, cluster));
      } else {
        std::fill(cluster.begin(), cluster.end(), 0);
        QK_ASSIGN_OR_RETURN(host, allocate_clusters_locked(1));
        metadata_clusters_.insert(host / cluster_size_);
        store_be64(raw.data() + index * 8, host);
        table_changed = true;
      }
      for (size_t i = 0; i < cluster.size(); ++i) cluster[i] |= bits[i];
      QK_TRY(file_->write(host, cluster));
    }
    if (table_changed) {
      QK_TRY(barrier_before_l2_locked());  // the new clusters' counts and data first
      QK_TRY(file_->write(b.table_offset, raw));
    }
    t.set_bits.clear();
  }
  QK_TRY(barrier_locked());
  QK_TRY(set_bitmaps_in_use_locked(false));
  bitmaps_in_use_ = false;
  return {};
}

}  // namespace qcowkit
