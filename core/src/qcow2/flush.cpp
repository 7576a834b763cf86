// Writing metadata back in the order that keeps a crash harmless (as QEMU
// does): refcount blocks (raised counts) reach the disk before any L2 entry
// that points at a new cluster, L2 tables before the L1 entries that point at
// them, and a dropped refcount only after the reference is gone from disk.
// A crash between any two steps can leave leaked clusters, never a
// reference to a cluster whose refcount says it is free.
#include <algorithm>

#include "qcow2/image_impl.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

Status Qcow2Image::Impl::write_header_field_locked(uint64_t field_offset, ConstByteSpan bytes) {
  return file_->write(field_offset, bytes);
}

Status Qcow2Image::Impl::write_dirty_refcounts_locked() {
  const bool any = !dirty_reftable_.empty() || !cache_.dirty_tables(TableKind::refcount_block).empty();
  for (const TablePtr& block : cache_.dirty_tables(TableKind::refcount_block))
    QK_TRY(write_table_locked(block));
  // Table entries go after the blocks they point at, with a barrier between:
  // a disk may reorder writes, and an entry naming a block that never
  // arrived would make every cluster it counts look free.
  if (!dirty_reftable_.empty()) QK_TRY(file_->flush());
  // A new block may lie in the range another new block counts: its entry
  // goes only after that block's entry is on disk, or a crash could keep
  // the one and lose the other, leaving a referenced block counted nowhere.
  // So entries go in rounds: those whose block counts itself or is counted
  // by a block already on disk, then a barrier, then the next round.
  while (!dirty_reftable_.empty()) {
    std::vector<uint64_t> round;
    for (uint64_t index : dirty_reftable_) {
      const uint64_t owner = (reftable_[index] / cluster_size_) / refblock_entries_;
      if (owner == index || !dirty_reftable_.count(owner)) round.push_back(index);
    }
    if (round.empty()) round.assign(dirty_reftable_.begin(), dirty_reftable_.end());  // never a cycle; still write
    for (uint64_t index : round) {
      uint8_t entry[8];
      store_be64(entry, reftable_[index]);
      QK_TRY(file_->write(header_.refcount_table_offset + index * 8, entry));
      dirty_reftable_.erase(index);
    }
    if (!dirty_reftable_.empty()) QK_TRY(file_->flush());
  }
  if (any) QK_TRY(file_->flush());
  return {};
}

Status Qcow2Image::Impl::barrier_locked() {
  QK_TRY(file_->flush());
  if (data_file_ != file_) QK_TRY(data_file_->flush());
  return {};
}

// Before an L2 table reaches the disk, everything its entries may name must
// be durable: the refcounts that count the clusters, and the clusters' data
// (guest bytes, and the old contents merged into a newly allocated cluster).
// Neither "a refcount block is dirty now" nor "nothing was written since the
// last flush" can be told from the cache alone (a refcount block may have
// been evicted, and data is written outside the lock), so the barrier is
// unconditional; it is skipped only when writing the refcounts just made one.
Status Qcow2Image::Impl::barrier_before_l2_locked() {
  const bool refcounts_dirty =
      !dirty_reftable_.empty() || !cache_.dirty_tables(TableKind::refcount_block).empty();
  QK_TRY(write_dirty_refcounts_locked());
  return refcounts_dirty ? Status{} : barrier_locked();
}

Status Qcow2Image::Impl::flush_locked() {
  const auto dirty_l2 = cache_.dirty_tables(TableKind::l2);
  if (dirty_l2.empty())
    QK_TRY(write_dirty_refcounts_locked());
  else
    QK_TRY(barrier_before_l2_locked());
  for (const TablePtr& l2 : dirty_l2) QK_TRY(write_table_locked(l2));
  // A new L1 entry must not reach the disk before the table it names.
  if (!dirty_l1_.empty()) QK_TRY(file_->flush());
  // L1 entries, coalesced into runs of adjacent indices.
  for (auto it = dirty_l1_.begin(); it != dirty_l1_.end();) {
    const uint64_t first = *it;
    uint64_t last = first;
    for (++it; it != dirty_l1_.end() && *it == last + 1; ++it) last = *it;
    std::vector<uint8_t> raw((last - first + 1) * 8);
    for (uint64_t i = first; i <= last; ++i) store_be64(raw.data() + (i - first) * 8, l1_[i]);
    QK_TRY(file_->write(header_.l1_table_offset + first * 8, raw));
  }
  dirty_l1_.clear();
  // Data written in place needs this barrier too, so it always happens.
  QK_TRY(barrier_locked());
  // Every reference dropped before this point (under this same hold of the
  // lock) is now gone from the disk, so those refcounts may drop. Drops
  // queued after it wait for the next flush: their L2 changes are not on
  // disk yet.
  releasable_decrements_.insert(releasable_decrements_.end(), deferred_decrements_.begin(),
                                deferred_decrements_.end());
  deferred_decrements_.clear();
  return {};
}

Status Qcow2Image::Impl::apply_deferred_decrements() {
  {
    // Most flushes free nothing: they need not wait for all I/O to drain.
    MutexLock lock(mutex_);
    if (releasable_decrements_.empty()) return {};
  }
  WriterLock gate(io_gate_);  // no I/O may still target a cluster we free
  MutexLock lock(mutex_);
  return apply_releasable_locked();
}

Status Qcow2Image::Impl::apply_releasable_locked() {
  if (releasable_decrements_.empty()) return {};
  std::vector<uint64_t> pending;
  pending.swap(releasable_decrements_);
  for (size_t i = 0; i < pending.size(); ++i) {
    Status st = drop_reference_now_locked(pending[i]);
    if (!st.ok()) {
      // Keep what was not applied: a later flush tries again.
      releasable_decrements_.insert(releasable_decrements_.end(), pending.begin() + i + 1,
                                    pending.end());
      return st;
    }
  }
  return write_dirty_refcounts_locked();
}

Status Qcow2Image::Impl::flush() {
  QK_TRY(check_open("flush", false));
  if (read_only_) return {};
  {
    MutexLock lock(mutex_);
    QK_TRY(flush_locked());
  }
  return apply_deferred_decrements();
}

Error Qcow2Image::Impl::corruption_locked(const std::string& what) {
  if (!corrupt_ && !read_only_) {
    // Mark the image so that no one writes to it before it is repaired.
    uint8_t field[8];
    store_be64(field, header_.incompatible_features | kIncompatCorrupt);
    if (header_.version >= 3 && write_header_field_locked(kOffIncompatible, field).ok()) {
      header_.incompatible_features |= kIncompatCorrupt;
      (void)file_->flush();
    }
  }
  corrupt_ = true;
  return make_error(EIO, "the qcow2 image is corrupt: " + what);
}

}  // namespace qcowkit
