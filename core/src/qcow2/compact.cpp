// compact: moves clusters from the end of the file into free space nearer
// the start, then truncates the file.
//
// Only clusters with a single owner move: data clusters of the active layer,
// active L2 tables whose refcount is one (clusters shared with a snapshot
// stay where they are) and refcount blocks. Each batch of moves is crash safe in three steps,
// each ending in a barrier: (1) raise the targets' refcounts and copy the
// data, (2) point the L2/L1 entries at the targets, (3) drop the old
// clusters' refcounts. A crash between steps leaks clusters at worst.
#include <algorithm>
#include <unordered_map>

#include "qcow2/image_impl.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {

enum class OwnerKind { data, l2_table, refcount_block };

struct Owner {
  OwnerKind kind = OwnerKind::data;
  uint64_t index = 0;     // L1 index (data, L2 tables) or refcount table index
  uint64_t l2_index = 0;  // data clusters: the entry in that L1 index's table
};

constexpr size_t kMovesPerBatch = 256;

}  // namespace

Status Qcow2Image::Impl::compact() {
  QK_TRY(check_open("compact", true));
  QK_TRY(flush());
  WriterLock gate(io_gate_);
  MutexLock lock(mutex_);
  QK_TRY(prepare_first_write_locked());
  const uint64_t cs = cluster_size_;

  // Who owns each movable cluster.
  std::unordered_map<uint64_t, Owner> owners;
  for (uint64_t i = 0; i < l1_.size(); ++i) {
    const uint64_t l2_offset = l1_[i] & kOffsetMask;
    if (l2_offset == 0) continue;
    QK_ASSIGN_OR_RETURN(uint64_t l2_count, refcount_locked(l2_offset / cs));
    if (l2_count == 1) owners[l2_offset / cs] = Owner{OwnerKind::l2_table, i, 0};
    QK_ASSIGN_OR_RETURN(TablePtr l2, load_l2_locked(l2_offset));
    for (uint64_t k = 0; k < l2_entries_; ++k) {
      const uint64_t entry = l2_entry(*l2, k);
      const uint64_t host = entry & kOffsetMask;
      if ((entry & kCompressed) || host == 0) continue;
      QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(host / cs));
      if (count == 1) owners[host / cs] = Owner{OwnerKind::data, i, k};
    }
  }

  for (uint64_t b = 0; b < reftable_.size(); ++b)
    if (reftable_[b]) owners[reftable_[b] / cs] = Owner{OwnerKind::refcount_block, b, 0};

  auto highest_used = [&]() QK_REQUIRES(mutex_) -> Result<uint64_t> {
    for (uint64_t c = (file_->info().size + cs - 1) / cs; c > 0; --c) {
      QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(c - 1));
      if (count || is_metadata_cluster(c - 1)) return c;
    }
    return uint64_t{1};
  };

  free_hint_ = 0;
  QK_ASSIGN_OR_RETURN(uint64_t end, highest_used());
  std::vector<uint8_t> buffer(cs);
  bool progress = true;
  while (progress) {
    progress = false;
    struct Move { uint64_t from, to; Owner owner; };
    std::vector<Move> moves;
    // Step 1: targets counted, data copied.
    while (moves.size() < kMovesPerBatch && end > 1) {
      const uint64_t candidate = end - 1;
      QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(candidate));
      if (count == 0 && !is_metadata_cluster(candidate)) {
        end = candidate;
        continue;
      }
      auto owner = owners.find(candidate);
      if (owner == owners.end()) break;  // cannot move: the file ends here
      QK_ASSIGN_OR_RETURN(uint64_t target, find_free_run_locked(1));
      if (target >= candidate) break;
      QK_ASSIGN_OR_RETURN(uint64_t target_offset, allocate_clusters_locked(1));
      if (target_offset / cs != target) return make_error(EIO, "compact: allocation went elsewhere");
      switch (owner->second.kind) {
        case OwnerKind::l2_table:
        case OwnerKind::refcount_block: {
          // Tables move in the cache; the new copy is written by the barrier
          // below. A refcount block's table entry is switched right away:
          // its write waits for the block's own (see flush.cpp).
          const TableKind kind = owner->second.kind == OwnerKind::l2_table ? TableKind::l2
                                                                            : TableKind::refcount_block;
          QK_ASSIGN_OR_RETURN(TablePtr old_table, load_table_locked(candidate * cs, kind));
          auto moved = cache_.new_table(target_offset, kind, cluster_size_);
          moved->data = old_table->data;
          moved->dirty = true;
          cache_.erase(candidate * cs);
          cache_.insert(moved);
          metadata_clusters_.insert(target);
          if (kind == TableKind::refcount_block) {
            reftable_[owner->second.index] = target_offset;
            dirty_reftable_.insert(owner->second.index);
          }
          break;
        }
        case OwnerKind::data:
          QK_TRY(data_file_->read(candidate * cs, buffer));
          QK_TRY(data_file_->write(target_offset, buffer));
          break;
      }
      moves.push_back(Move{candidate, target, owner->second});
      owners.erase(owner);
      end = candidate;
    }
    if (moves.empty()) break;
    QK_TRY(write_dirty_refcounts_locked());
    QK_TRY(data_file_->flush());

    // Step 2: owners point at the new places.
    for (const Move& m : moves) {
      if (m.owner.kind == OwnerKind::l2_table) {
        l1_[m.owner.index] = (m.to * cs) | kCopied;
        dirty_l1_.insert(m.owner.index);
      }
    }
    for (const Move& m : moves) {
      if (m.owner.kind != OwnerKind::data) continue;
      QK_ASSIGN_OR_RETURN(TablePtr l2, load_l2_locked(l1_[m.owner.index] & kOffsetMask));
      const uint64_t entry = l2_entry(*l2, m.owner.l2_index);
      set_l2_entry(*l2, m.owner.l2_index, (entry & ~kOffsetMask) | (m.to * cs), l2_bitmap(*l2, m.owner.l2_index));
    }
    QK_TRY(flush_locked());

    // Step 3: the old places are free.
    for (const Move& m : moves) {
      QK_TRY(adjust_refcount_locked(m.from, -1));
      metadata_clusters_.erase(m.from);
    }
    QK_TRY(write_dirty_refcounts_locked());
    progress = true;
  }
  QK_ASSIGN_OR_RETURN(uint64_t new_end, highest_used());
  if (new_end * cs < file_->info().size) {
    QK_TRY(file_->resize(new_end * cs));
    QK_TRY(file_->flush());
  }
  free_hint_ = 0;
  compressed_cursor_ = 0;
  return {};
}

}  // namespace qcowkit
