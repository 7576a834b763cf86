// Getting an L2 table the active layer may change, and letting go of what
// an L2 entry used to point at.
#include "qcow2/image_impl.hpp"

namespace qcowkit {

using namespace qcow2;

// The L2 table covering guest_offset, allocated if missing and copied if it
// is shared with a snapshot (its L1 entry lacks COPIED).
Result<TablePtr> Qcow2Image::Impl::writable_l2_locked(uint64_t guest_offset) {
  const uint64_t l1_index = guest_offset / (l2_entries_ * cluster_size_);
  if (l1_index >= l1_.size())
    return make_error(ERANGE, "guest offset " + std::to_string(guest_offset) + " is past the L1 table");
  const uint64_t entry = l1_[l1_index];
  const uint64_t old_offset = entry & kOffsetMask;
  if (old_offset != 0 && (entry & kCopied)) return load_l2_locked(old_offset);

  TablePtr old_table;
  if (old_offset != 0) {
    QK_ASSIGN_OR_RETURN(old_table, load_l2_locked(old_offset));
    QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(old_offset / cluster_size_));
    if (count == 1) {  // nobody else uses it after all
      l1_[l1_index] = old_offset | kCopied;
      dirty_l1_.insert(l1_index);
      return old_table;
    }
  }
  QK_ASSIGN_OR_RETURN(uint64_t new_offset, allocate_clusters_locked(1));
  auto table = cache_.new_table(new_offset, TableKind::l2, cluster_size_);
  table->dirty = true;
  if (old_table) {
    // The data clusters keep their counts: the snapshot's table and this
    // copy both point at them, which their refcounts already say.
    table->data = old_table->data;
  }
  metadata_clusters_.insert(new_offset / cluster_size_);
  cache_.insert(table);
  l1_[l1_index] = new_offset | kCopied;
  dirty_l1_.insert(l1_index);
  if (old_offset != 0) defer_decrement_locked(old_offset);
  QK_TRY(make_room_locked());
  return table;
}

// Queues the refcount drop for whatever an overwritten L2 entry owned.
void Qcow2Image::Impl::release_entry_locked(uint64_t entry, uint64_t /*bitmap*/) {
  if (entry & kCompressed) {
    const CompressedStream stream = decode_compressed(entry, cluster_bits_);
    defer_compressed_free_locked(stream.offset, stream.bytes);
    return;
  }
  const uint64_t host = entry & kOffsetMask;
  if (host != 0) defer_decrement_locked(host);
}

}  // namespace qcowkit
