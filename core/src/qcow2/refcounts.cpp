// Refcounts and cluster allocation.
//
// Refcount blocks live in the metadata cache like L2 tables. A new refcount
// block is placed inside the range it describes, so it counts itself; when
// the refcount table is full it is rebuilt larger at the end of the file.
// Drops in refcount are deferred until the references to the cluster are
// gone from the disk (see flush.cpp), so a crash can only leak clusters.
#include <algorithm>
#include <map>

#include "qcow2/image_impl.hpp"
#include "util/hex.hpp"
#include "qcow2/refcount_entry.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

Result<uint64_t> Qcow2Image::Impl::refcount_locked(uint64_t cluster_index) {
  const uint64_t block_index = cluster_index / refblock_entries_;
  if (block_index >= reftable_.size() || reftable_[block_index] == 0) return uint64_t{0};
  QK_ASSIGN_OR_RETURN(TablePtr block,
                      load_table_locked(reftable_[block_index], TableKind::refcount_block));
  return get_refcount_entry(block->data.data(), cluster_index % refblock_entries_, refcount_bits_);
}

Status Qcow2Image::Impl::adjust_refcount_locked(uint64_t cluster_index, int64_t delta) {
  const uint64_t block_index = cluster_index / refblock_entries_;
  // A cluster without a refcount block has refcount 0: dropping it is
  // corruption (say, a hostile entry pointing far past the end), and must
  // not grow the refcount table out to wherever the entry pointed.
  if (delta < 0 && (block_index >= reftable_.size() || reftable_[block_index] == 0))
    return corruption_locked("refcount of cluster " + hex(cluster_index * cluster_size_) +
                             " would drop below zero");
  QK_TRY(ensure_refcount_block_locked(block_index));
  QK_ASSIGN_OR_RETURN(TablePtr block,
                      load_table_locked(reftable_[block_index], TableKind::refcount_block));
  const uint64_t index = cluster_index % refblock_entries_;
  const uint64_t value = get_refcount_entry(block->data.data(), index, refcount_bits_);
  uint64_t updated;
  if (delta < 0) {
    if (value < static_cast<uint64_t>(-delta))
      return corruption_locked("refcount of cluster " + hex(cluster_index * cluster_size_) +
                               " would drop below zero");
    updated = value - static_cast<uint64_t>(-delta);
  } else {
    if (max_refcount(refcount_bits_) - value < static_cast<uint64_t>(delta))
      return make_error(EOVERFLOW, "refcount of cluster " + hex(cluster_index * cluster_size_) +
                                       " would exceed the " + std::to_string(refcount_bits_) +
                                       "-bit refcount width");
    updated = value + static_cast<uint64_t>(delta);
  }
  set_refcount_entry(block->data.data(), index, refcount_bits_, updated);
  block->dirty = true;
  if (updated == 0 && cluster_index < free_hint_) free_hint_ = cluster_index;
  return {};
}

Status Qcow2Image::Impl::ensure_refcount_block_locked(uint64_t block_index) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (block_index < reftable_.size() && reftable_[block_index] != 0) return {};
    if (block_index >= reftable_.size()) {
      QK_TRY(grow_refcount_table_locked(block_index + 1));
      continue;  // growing may have placed this block already
    }
    // The new block goes in the lowest free cluster, as QEMU places them, so
    // that new blocks pack together instead of splitting runs of data.
    QK_ASSIGN_OR_RETURN(uint64_t cluster, find_free_run_locked(1));
    const uint64_t owner = cluster / refblock_entries_;
    const bool counts_itself = owner == block_index;
    if (!counts_itself && (owner >= reftable_.size() || reftable_[owner] == 0)) {
      QK_TRY(ensure_refcount_block_locked(owner));
      continue;  // that took a cluster; look again
    }
    auto block = cache_.new_table(cluster * cluster_size_, TableKind::refcount_block, cluster_size_);
    block->dirty = true;
    const uint64_t end = (cluster + 1) * cluster_size_;
    if (file_->info().size < end) QK_TRY(file_->resize(end));
    reftable_[block_index] = block->offset;
    dirty_reftable_.insert(block_index);
    metadata_clusters_.insert(cluster);
    cache_.insert(block);
    if (counts_itself)
      set_refcount_entry(block->data.data(), cluster % refblock_entries_, refcount_bits_, 1);
    else
      QK_TRY(adjust_refcount_locked(cluster, 1));
    return make_room_locked();
  }
  return make_error(EIO, "placing a new refcount block did not settle");
}

// Builds a larger refcount table at the end of the file, with the refcount
// blocks that the new clusters themselves need placed just before it, and
// switches the header to it once it is on disk.
Status Qcow2Image::Impl::grow_refcount_table_locked(uint64_t min_entries) {
  const uint64_t entries_per_cluster = cluster_size_ / 8;
  const uint64_t old_entries = reftable_.size();
  // Refuse before planning: the plan below is as large as the table.
  if (min_entries > kMaxRefcountTableBytes / 8)
    return make_error(EFBIG, "the refcount table would grow past 8 MiB; the image is too large");
  uint64_t want = std::max(min_entries, old_entries + old_entries / 2 + 1);
  const uint64_t start = (file_->info().size + cluster_size_ - 1) / cluster_size_;

  uint64_t table_clusters = 0;
  std::vector<uint64_t> new_blocks;  // block indices that get a new block
  for (int round = 0; round < 64; ++round) {
    table_clusters = (want + entries_per_cluster - 1) / entries_per_cluster;
    // Blocks needed to count [start, start + blocks + table) until stable.
    std::vector<uint64_t> needed;
    for (size_t k = 0;; k = needed.size()) {
      needed.clear();
      const uint64_t first = start / refblock_entries_;
      const uint64_t last = (start + k + table_clusters - 1) / refblock_entries_;
      for (uint64_t b = first; b <= last; ++b)
        if (b >= old_entries || reftable_[b] == 0) needed.push_back(b);
      if (needed.size() == k) break;
    }
    new_blocks = needed;
    const uint64_t highest = new_blocks.empty() ? 0 : new_blocks.back() + 1;
    if (highest <= want) break;
    want = highest;
  }
  if (table_clusters * cluster_size_ > kMaxRefcountTableBytes)
    return make_error(EFBIG, "the refcount table would grow past 8 MiB; the image is too large");

  const uint64_t blocks_start = start;
  const uint64_t table_start = start + new_blocks.size();
  const uint64_t area_end = table_start + table_clusters;

  // Existing blocks that count part of the new area get their counts raised,
  // and everything referenced by the new table must be on disk before it.
  for (uint64_t c = blocks_start; c < area_end; ++c) {
    const uint64_t b = c / refblock_entries_;
    if (b < old_entries && reftable_[b] != 0) QK_TRY(adjust_refcount_locked(c, 1));
  }
  QK_TRY(write_dirty_refcounts_locked());

  std::vector<uint64_t> table(table_clusters * entries_per_cluster, 0);
  std::copy(reftable_.begin(), reftable_.end(), table.begin());
  QK_TRY(file_->resize(area_end * cluster_size_));
  for (size_t i = 0; i < new_blocks.size(); ++i) {
    const uint64_t b = new_blocks[i];
    const uint64_t block_cluster = blocks_start + i;
    std::vector<uint8_t> data(cluster_size_, 0);
    for (uint64_t c = std::max(blocks_start, b * refblock_entries_);
         c < std::min(area_end, (b + 1) * refblock_entries_); ++c)
      set_refcount_entry(data.data(), c - b * refblock_entries_, refcount_bits_, 1);
    QK_TRY(file_->write(block_cluster * cluster_size_, data));
    table[b] = block_cluster * cluster_size_;
    metadata_clusters_.insert(block_cluster);
  }
  std::vector<uint8_t> raw(table.size() * 8);
  for (size_t i = 0; i < table.size(); ++i) store_be64(raw.data() + i * 8, table[i]);
  QK_TRY(file_->write(table_start * cluster_size_, raw));
  QK_TRY(file_->flush());

  uint8_t field[12];
  store_be64(field, table_start * cluster_size_);
  store_be32(field + 8, static_cast<uint32_t>(table_clusters));
  QK_TRY(write_header_field_locked(kOffRefcountTableOffset, field));
  QK_TRY(file_->flush());

  const uint64_t old_offset = header_.refcount_table_offset;
  const uint64_t old_clusters = header_.refcount_table_clusters;
  header_.refcount_table_offset = table_start * cluster_size_;
  header_.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  reftable_ = std::move(table);
  dirty_reftable_.clear();
  for (uint64_t c = table_start; c < area_end; ++c) metadata_clusters_.insert(c);
  defer_decrement_locked(old_offset, old_clusters);
  return {};
}

// The lowest run of `count` free clusters at or above the hint. Clusters that
// a missing refcount block would count are free.
Result<uint64_t> Qcow2Image::Impl::find_free_run_locked(uint64_t count) {
  uint64_t run_start = free_hint_, run = 0, c = free_hint_;
  while (run < count) {
    const uint64_t b = c / refblock_entries_;
    TablePtr block;
    if (b < reftable_.size() && reftable_[b] != 0) {
      QK_ASSIGN_OR_RETURN(block, load_table_locked(reftable_[b], TableKind::refcount_block));
    }
    const uint64_t block_end = (b + 1) * refblock_entries_;
    for (; c < block_end && run < count; ++c) {
      const bool used = is_metadata_cluster(c) ||
                        (block && get_refcount_entry(block->data.data(), c - b * refblock_entries_,
                                                     refcount_bits_) != 0);
      if (used) {
        run = 0;
        run_start = c + 1;
      } else {
        ++run;
      }
    }
  }
  return run_start;
}

Result<uint64_t> Qcow2Image::Impl::allocate_clusters_locked(uint64_t count) {
  // Each pass either succeeds or creates a refcount block the run needs;
  // a block takes a cluster, so then the search starts again.
  const uint64_t max_attempts = 64 + 2 * (count / refblock_entries_ + 1);
  for (uint64_t attempt = 0; attempt < max_attempts; ++attempt) {
    QK_ASSIGN_OR_RETURN(uint64_t run_start, find_free_run_locked(count));
    bool created = false;
    for (uint64_t b = run_start / refblock_entries_;
         b <= (run_start + count - 1) / refblock_entries_ && !created; ++b) {
      if (b >= reftable_.size() || reftable_[b] == 0) {
        QK_TRY(ensure_refcount_block_locked(b));
        created = true;
      }
    }
    if (created) continue;
    for (uint64_t i = 0; i < count; ++i) QK_TRY(adjust_refcount_locked(run_start + i, 1));
    const uint64_t end = (run_start + count) * cluster_size_;
    if (file_->info().size < end) QK_TRY(file_->resize(end));
    // Below a single free cluster everything is in use; a longer run may
    // have skipped shorter free ones, so then the hint stays.
    if (count == 1 || run_start == free_hint_) free_hint_ = run_start + count;
    return run_start * cluster_size_;
  }
  return make_error(EIO, "cluster allocation did not settle");
}

Result<uint64_t> Qcow2Image::Impl::allocate_bytes_locked(uint64_t bytes) {
  if (compressed_cursor_ != 0) {
    const uint64_t used = compressed_cursor_ % cluster_size_;
    const uint64_t cluster = compressed_cursor_ / cluster_size_;
    // A stream may run on into the next cluster when that one is free, as
    // QEMU packs them: no space is lost at the end of each cluster.
    if (used != 0 && used + bytes > cluster_size_ && bytes < cluster_size_) {
      const uint64_t next = cluster + 1;
      const uint64_t block = next / refblock_entries_;
      QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(cluster));
      QK_ASSIGN_OR_RETURN(uint64_t next_count, refcount_locked(next));
      if (count > 0 && count < max_refcount(refcount_bits_) && next_count == 0 &&
          !is_metadata_cluster(next) && block < reftable_.size() && reftable_[block] != 0) {
        QK_TRY(adjust_refcount_locked(cluster, 1));
        QK_TRY(adjust_refcount_locked(next, 1));
        const uint64_t end = (next + 1) * cluster_size_;
        if (file_->info().size < end) QK_TRY(file_->resize(end));
        const uint64_t offset = compressed_cursor_;
        compressed_cursor_ = (offset + bytes) % cluster_size_ ? offset + bytes : 0;
        return offset;
      }
    }
    if (used != 0 && used + bytes <= cluster_size_) {
      QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(compressed_cursor_ / cluster_size_));
      // Still ours (a flush may have freed it since), and room in its count
      // (1-bit refcounts cannot share a cluster between two streams).
      if (count > 0 && count < max_refcount(refcount_bits_)) {
        const uint64_t offset = compressed_cursor_;
        QK_TRY(adjust_refcount_locked(offset / cluster_size_, 1));
        compressed_cursor_ = (offset + bytes) % cluster_size_ ? offset + bytes : 0;
        return offset;
      }
    }
  }
  const uint64_t clusters = (bytes + cluster_size_ - 1) / cluster_size_;
  QK_ASSIGN_OR_RETURN(uint64_t offset, allocate_clusters_locked(clusters));
  compressed_cursor_ = (offset + bytes) % cluster_size_ ? offset + bytes : 0;
  return offset;
}

void Qcow2Image::Impl::defer_decrement_locked(uint64_t host_offset, uint64_t clusters) {
  for (uint64_t i = 0; i < clusters; ++i)
    deferred_decrements_.push_back(host_offset / cluster_size_ + i);
}

void Qcow2Image::Impl::defer_compressed_free_locked(uint64_t byte_offset, uint64_t bytes) {
  const uint64_t first = byte_offset / cluster_size_;
  const uint64_t last = (byte_offset + bytes - 1) / cluster_size_;
  for (uint64_t c = first; c <= last; ++c) deferred_decrements_.push_back(c);
}

}  // namespace qcowkit
