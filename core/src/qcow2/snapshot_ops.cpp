// Internal snapshots: create, delete, apply (qemu-img snapshot -c/-d/-a).
//
// Refcounts follow QEMU's rule: a cluster's count is the number of L1
// tables (the active one and each snapshot's) whose tree reaches it, so a
// snapshot adds one to every L2 table and data cluster the active layer
// reaches, and deleting it takes that one away again.
//
// Crash safety: every step raises counts before anything on disk depends on
// them and lowers them only after the reference is gone from the disk, so a
// power cut at any write leaves the old or the new snapshot table, with at
// worst leaked clusters. The header's snapshot count and table offset
// (bytes 60-71, one sector) switch from one complete table to the other in
// a single write. COPIED flags follow the counts they describe: cleared
// (durably) before the counts rise, set again only after the lowered counts
// are on disk. A flag cannot change in the same write as a count, so a power
// cut in between can leave a cluster with refcount 1 and no COPIED flag:
// check reports it (as qemu-img does) and `check -r all` repairs it; it only
// costs a copy on the next write. The other mismatch, a raised count under
// a COPIED flag, never reaches the disk.
//
// Each operation takes the image for itself: it waits for requests in
// flight and holds both locks throughout.
#include <algorithm>
#include <ctime>
#include <functional>

#include "qcow2/image_impl.hpp"
#include "util/endian.hpp"
#include "util/hex.hpp"

namespace qcowkit {

using namespace qcow2;

// Calls visit(cluster) for every cluster the L1 table `l1` reaches: for each
// L2 table, the clusters its entries name, then the table itself. Stops
// after `limit` visits or at the first error.
Status Qcow2Image::Impl::for_each_reference_locked(const std::vector<uint64_t>& l1,
                                                   const std::function<Status(uint64_t)>& visit,
                                                   uint64_t limit) {
  uint64_t visits = 0;
  auto call = [&](uint64_t cluster) -> Status {
    if (visits >= limit) return make_error(ECANCELED, "limit");
    ++visits;
    return visit(cluster);
  };
  for (uint64_t l1_entry : l1) {
    const uint64_t l2_offset = l1_entry & kOffsetMask;
    if (l2_offset == 0) continue;
    QK_ASSIGN_OR_RETURN(TablePtr l2, load_l2_locked(l2_offset));
    for (uint64_t i = 0; i < l2_entries_; ++i) {
      const uint64_t entry = l2_entry(*l2, i);
      if (entry & kCompressed) {
        const CompressedStream stream = decode_compressed(entry, cluster_bits_);
        for (uint64_t c = stream.offset / cluster_size_;
             c <= (stream.offset + stream.bytes - 1) / cluster_size_; ++c)
          QK_TRY(call(c));
        continue;
      }
      const uint64_t host = entry & kOffsetMask;
      if (host == 0) continue;
      if (host % cluster_size_ != 0)
        return corruption_locked("data cluster " + hex(host) + " is not cluster aligned");
      QK_TRY(call(host / cluster_size_));
    }
    QK_TRY(call(l2_offset / cluster_size_));
  }
  return {};
}

// Adds `delta` to the count of every cluster `l1` reaches. On failure the
// counts changed so far are put back, so nothing is left half done.
Status Qcow2Image::Impl::adjust_tree_refcounts_locked(const std::vector<uint64_t>& l1, int64_t delta) {
  uint64_t done = 0;
  Status st = for_each_reference_locked(
      l1,
      [&](uint64_t cluster) QK_REQUIRES(mutex_) -> Status {
        QK_TRY(delta > 0 ? adjust_refcount_locked(cluster, delta) : drop_reference_now_locked(cluster));
        ++done;
        return {};
      },
      UINT64_MAX);
  if (!st.ok() && done > 0) {
    (void)for_each_reference_locked(
        l1, [&](uint64_t cluster) QK_REQUIRES(mutex_) { return adjust_refcount_locked(cluster, -delta); },
        done);
  }
  return st;
}

// Lowers a count now (the caller made sure no durable reference remains)
// and forgets a cluster that becomes free.
Status Qcow2Image::Impl::drop_reference_now_locked(uint64_t cluster) {
  QK_TRY(adjust_refcount_locked(cluster, -1));
  QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(cluster));
  if (count == 0) {
    metadata_clusters_.erase(cluster);
    cache_.erase(cluster * cluster_size_);
    if (compressed_cursor_ / cluster_size_ == cluster) compressed_cursor_ = 0;
  }
  return {};
}

// Sets or clears COPIED on the active layer's L1 and L2 entries so that it
// says exactly "refcount is 1" (QEMU's pass with addend 0).
Status Qcow2Image::Impl::update_copied_flags_locked() {
  for (uint64_t i = 0; i < l1_.size(); ++i) {
    const uint64_t l2_offset = l1_[i] & kOffsetMask;
    if (l2_offset == 0) continue;
    QK_ASSIGN_OR_RETURN(TablePtr l2, load_l2_locked(l2_offset));
    for (uint64_t k = 0; k < l2_entries_; ++k) {
      const uint64_t entry = l2_entry(*l2, k);
      const uint64_t host = entry & kOffsetMask;
      if ((entry & kCompressed) || host == 0) continue;
      QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(host / cluster_size_));
      const uint64_t wanted = count == 1 ? (entry | kCopied) : (entry & ~kCopied);
      if (wanted != entry) set_l2_entry(*l2, k, wanted, l2_bitmap(*l2, k));
    }
    QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(l2_offset / cluster_size_));
    const uint64_t wanted = count == 1 ? (l1_[i] | kCopied) : (l1_[i] & ~kCopied);
    if (wanted != l1_[i]) {
      l1_[i] = wanted;
      dirty_l1_.insert(i);
    }
  }
  return {};
}

// After counts were lowered: the lowered counts reach the disk, then the
// COPIED flags that now say "refcount 1" (never the other way round), then
// whatever a flush made releasable is freed.
Status Qcow2Image::Impl::settle_after_drops_locked() {
  QK_TRY(write_dirty_refcounts_locked());
  QK_TRY(update_copied_flags_locked());
  QK_TRY(flush_locked());
  return apply_releasable_locked();
}

// Writes `entries` as a new table in new clusters and switches the header
// to it; the old table's clusters are freed once the switch is on disk.
Status Qcow2Image::Impl::publish_snapshot_table_locked(std::vector<SnapshotEntry> entries) {
  if (entries.size() > kMaxSnapshots)
    return make_error(EFBIG, "an image holds at most " + std::to_string(kMaxSnapshots) + " snapshots");
  const std::vector<uint8_t> table = encode_snapshot_table(entries);
  if (table.size() > kMaxSnapshotTableBytes)
    return make_error(EFBIG, "the snapshot table would be larger than 64 MiB");
  uint64_t offset = 0;
  const uint64_t clusters = (table.size() + cluster_size_ - 1) / cluster_size_;
  if (clusters) {
    QK_ASSIGN_OR_RETURN(offset, allocate_clusters_locked(clusters));
    for (uint64_t c = 0; c < clusters; ++c) metadata_clusters_.insert(offset / cluster_size_ + c);
    std::vector<uint8_t> padded(clusters * cluster_size_, 0);
    std::copy(table.begin(), table.end(), padded.begin());
    QK_TRY(file_->write(offset, padded));
  }
  // Everything the new table and its L1 copies rely on reaches the disk.
  QK_TRY(flush_locked());

  uint8_t field[12];
  store_be32(field, static_cast<uint32_t>(entries.size()));
  store_be64(field + 4, offset);
  QK_TRY(write_header_field_locked(kOffNbSnapshots, field));
  QK_TRY(barrier_locked());

  const uint64_t old_offset = header_.snapshots_offset;
  const uint64_t old_clusters = (snapshots_.byte_size + cluster_size_ - 1) / cluster_size_;
  header_.nb_snapshots = static_cast<uint32_t>(entries.size());
  header_.snapshots_offset = offset;
  snapshots_.entries = std::move(entries);
  snapshots_.byte_size = table.size();
  for (uint64_t c = 0; c < old_clusters && old_offset; ++c)
    QK_TRY(drop_reference_now_locked(old_offset / cluster_size_ + c));
  return {};
}

Result<size_t> Qcow2Image::Impl::find_snapshot_locked(const std::string& id_or_name) const {
  // As qemu-img: an ID first, then a name.
  for (size_t i = 0; i < snapshots_.entries.size(); ++i)
    if (snapshots_.entries[i].info.id == id_or_name) return i;
  for (size_t i = 0; i < snapshots_.entries.size(); ++i)
    if (snapshots_.entries[i].info.name == id_or_name) return i;
  return make_error(ENOENT, "snapshot '" + id_or_name + "' not found");
}

Result<std::vector<uint64_t>> Qcow2Image::Impl::read_l1_locked(uint64_t offset, uint32_t entries) {
  std::vector<uint8_t> raw(uint64_t{entries} * 8);
  QK_TRY(file_->read(offset, raw));
  std::vector<uint64_t> l1(entries);
  for (uint32_t i = 0; i < entries; ++i) l1[i] = load_be64(raw.data() + i * 8);
  return l1;
}

Status Qcow2Image::Impl::create_snapshot(const std::string& name) {
  QK_TRY(check_open("snapshot create", true));
  if (name.empty() || name.size() > UINT16_MAX)
    return make_error(EINVAL, "a snapshot name must be 1 to 65535 bytes long");
  WriterLock gate(io_gate_);
  MutexLock lock(mutex_);
  QK_TRY(prepare_first_write_locked());
  if (refcount_bits_ < 2)
    return make_error(ENOTSUP, "snapshots need refcounts of at least 2 bits; this image has 1-bit refcounts");

  // 1. The active layer's entries lose COPIED (on disk first: a flag that
  //    says "refcount 1" must never meet a raised count), then its clusters
  //    are counted once more. From now on they are shared.
  for (uint64_t i = 0; i < l1_.size(); ++i) {
    const uint64_t l2_offset = l1_[i] & kOffsetMask;
    if (l2_offset == 0) continue;
    QK_ASSIGN_OR_RETURN(TablePtr l2, load_l2_locked(l2_offset));
    for (uint64_t k = 0; k < l2_entries_; ++k) {
      const uint64_t entry = l2_entry(*l2, k);
      if (entry & kCopied) set_l2_entry(*l2, k, entry & ~kCopied, l2_bitmap(*l2, k));
    }
    if (l1_[i] & kCopied) {
      l1_[i] &= ~kCopied;
      dirty_l1_.insert(i);
    }
  }
  QK_TRY(flush_locked());
  QK_TRY(adjust_tree_refcounts_locked(l1_, +1));

  // 2. The snapshot's own copy of the L1 table.
  SnapshotEntry entry;
  entry.l1_size = static_cast<uint32_t>(l1_.size());
  if (!l1_.empty()) {
    const uint64_t clusters = (l1_.size() * 8 + cluster_size_ - 1) / cluster_size_;
    QK_ASSIGN_OR_RETURN(entry.l1_table_offset, allocate_clusters_locked(clusters));
    for (uint64_t c = 0; c < clusters; ++c) metadata_clusters_.insert(entry.l1_table_offset / cluster_size_ + c);
    std::vector<uint8_t> raw(clusters * cluster_size_, 0);
    for (uint64_t i = 0; i < l1_.size(); ++i) store_be64(raw.data() + i * 8, l1_[i]);
    QK_TRY(file_->write(entry.l1_table_offset, raw));
  }
  uint64_t next_id = 1;
  for (const SnapshotEntry& s : snapshots_.entries) {
    char* end = nullptr;
    const unsigned long long id = std::strtoull(s.info.id.c_str(), &end, 10);
    if (end && *end == '\0' && id >= next_id) next_id = id + 1;
  }
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  entry.info.id = std::to_string(next_id);
  entry.info.name = name;
  entry.info.date_sec = static_cast<uint32_t>(now.tv_sec);
  entry.info.date_nsec = static_cast<uint32_t>(now.tv_nsec);
  entry.info.virtual_size = header_.size;
  entry.info.icount = 0;  // what qemu-img records outside a VM

  // 3. A new table with the snapshot in it, published in one header write.
  std::vector<SnapshotEntry> entries = snapshots_.entries;
  entries.push_back(std::move(entry));
  QK_TRY(publish_snapshot_table_locked(std::move(entries)));
  QK_TRY(flush_locked());
  return apply_releasable_locked();
}

Status Qcow2Image::Impl::delete_snapshot(const std::string& id_or_name) {
  QK_TRY(check_open("snapshot delete", true));
  WriterLock gate(io_gate_);
  MutexLock lock(mutex_);
  QK_ASSIGN_OR_RETURN(size_t index, find_snapshot_locked(id_or_name));
  QK_TRY(prepare_first_write_locked());
  const SnapshotEntry gone = snapshots_.entries[index];
  QK_ASSIGN_OR_RETURN(std::vector<uint64_t> l1, read_l1_locked(gone.l1_table_offset, gone.l1_size));

  // 1. The table without it: from here on nothing on disk names its tree.
  std::vector<SnapshotEntry> entries = snapshots_.entries;
  entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(index));
  QK_TRY(publish_snapshot_table_locked(std::move(entries)));

  // 2. Its tree and its L1 table are counted once less.
  QK_TRY(adjust_tree_refcounts_locked(l1, -1));
  const uint64_t l1_clusters = (uint64_t{gone.l1_size} * 8 + cluster_size_ - 1) / cluster_size_;
  for (uint64_t c = 0; c < l1_clusters && gone.l1_table_offset; ++c)
    QK_TRY(drop_reference_now_locked(gone.l1_table_offset / cluster_size_ + c));

  // 3. Clusters only the active layer uses now get COPIED back.
  return settle_after_drops_locked();
}

Status Qcow2Image::Impl::apply_snapshot(const std::string& id_or_name) {
  QK_TRY(check_open("snapshot apply", true));
  WriterLock gate(io_gate_);
  MutexLock lock(mutex_);
  QK_ASSIGN_OR_RETURN(size_t index, find_snapshot_locked(id_or_name));
  const SnapshotEntry target = snapshots_.entries[index];
  if (target.info.virtual_size != header_.size)
    return make_error(ENOTSUP, "snapshot '" + id_or_name + "' has a virtual size of " +
                                   std::to_string(target.info.virtual_size) + " bytes, the image " +
                                   std::to_string(header_.size) + ": resize the image first");
  QK_TRY(prepare_first_write_locked());
  QK_ASSIGN_OR_RETURN(std::vector<uint64_t> l1, read_l1_locked(target.l1_table_offset, target.l1_size));
  for (uint64_t& e : l1) e &= ~kCopied;
  QK_TRY(grow_l1_locked(l1.size()));
  l1.resize(l1_.size(), 0);

  // 1. The snapshot's tree is counted once more (it will be reached from
  //    the active L1 too), durably, before the active L1 names it.
  QK_TRY(adjust_tree_refcounts_locked(l1, +1));
  const std::vector<uint64_t> old_l1 = l1_;
  l1_ = l1;
  for (uint64_t i = 0; i < l1_.size(); ++i) dirty_l1_.insert(i);
  QK_TRY(flush_locked());

  // 2. The old active tree is on disk no more: count it once less.
  QK_TRY(adjust_tree_refcounts_locked(old_l1, -1));
  return settle_after_drops_locked();
}

}  // namespace qcowkit
