// Guest-to-host lookups through the L1 and L2 tables, and the metadata
// cache that holds L2 tables and refcount blocks.
#include <algorithm>

#include "qcow2/image_impl.hpp"
#include "util/hex.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {


// One cluster (or subcluster, with extended L2) as an L2 entry describes it.
struct Unit {
  SpanKind kind = SpanKind::unallocated;
  uint64_t host = 0;  // data: host offset of the unit's first byte
  bool copied = false;
  bool preallocated = false;
  uint64_t compressed_offset = 0, compressed_bytes = 0;
};

}  // namespace

Result<TablePtr> Qcow2Image::Impl::load_table_locked(uint64_t offset, TableKind kind) {
  if (TablePtr t = cache_.find(offset)) {
    if (t->kind != kind)
      return corruption_locked("cluster " + hex(offset) + " is used both as an L2 table and as a refcount block");
    return t;
  }
  const uint64_t file_size = file_->info().size;
  if (offset % cluster_size_ != 0 || offset == 0)
    return corruption_locked((kind == TableKind::l2 ? "L2 table " : "refcount block ") + hex(offset) +
                             " is not at a valid cluster offset");
  auto table = cache_.new_table(offset, kind, cluster_size_);
  // A table may end past the end of the file only if the file was cut short
  // inside it; what is missing reads as zeroes.
  if (offset >= file_size)
    return corruption_locked((kind == TableKind::l2 ? "L2 table " : "refcount block ") + hex(offset) +
                             " lies past the end of the file");
  const uint64_t readable = std::min<uint64_t>(cluster_size_, file_size - offset);
  QK_TRY(file_->read(offset, ByteSpan(table->data.data(), readable)));
  cache_.insert(table);
  QK_TRY(make_room_locked());
  return table;
}

Result<TablePtr> Qcow2Image::Impl::load_l2_locked(uint64_t l2_offset) {
  return load_table_locked(l2_offset, TableKind::l2);
}

Status Qcow2Image::Impl::write_table_locked(const TablePtr& table) {
  QK_TRY(file_->write(table->offset, table->data));
  table->dirty = false;
  return {};
}

// Evicts least recently used tables until the cache fits its bound. A dirty
// L2 table may point at clusters whose refcounts are still only in memory,
// so the refcount blocks reach the disk first.
Status Qcow2Image::Impl::make_room_locked() {
  while (cache_.over_capacity()) {
    TablePtr victim = cache_.victim();
    if (!victim) break;  // everything is in use right now; shrink later
    if (victim->dirty) {
      if (victim->kind == TableKind::l2) {
        // Its entries may name new clusters: their refcounts and their data
        // must be on disk before it is.
        QK_TRY(barrier_before_l2_locked());
      }
      QK_TRY(write_table_locked(victim));
    }
    cache_.erase(victim->offset);
  }
  return {};
}

uint64_t Qcow2Image::Impl::l2_entry(const CachedTable& l2, uint64_t index) const {
  return load_be64(l2.data.data() + index * header_.l2_entry_bytes());
}

uint64_t Qcow2Image::Impl::l2_bitmap(const CachedTable& l2, uint64_t index) const {
  return header_.extended_l2() ? load_be64(l2.data.data() + index * 16 + 8) : 0;
}

void Qcow2Image::Impl::set_l2_entry(CachedTable& l2, uint64_t index, uint64_t entry,
                                    uint64_t bitmap) {
  uint8_t* p = l2.data.data() + index * header_.l2_entry_bytes();
  store_be64(p, entry);
  if (header_.extended_l2()) store_be64(p + 8, bitmap);
  l2.dirty = true;
}

Result<Span> Qcow2Image::Impl::lookup_locked(uint64_t guest_offset, uint64_t max_length) {
  const uint64_t table_span = l2_entries_ * cluster_size_;
  const uint64_t l1_index = guest_offset / table_span;
  const uint64_t limit =
      std::min({guest_offset + max_length, (l1_index + 1) * table_span, header_.size});
  Span span;
  span.guest_offset = guest_offset;
  if (l1_index >= l1_.size()) {
    span.length = limit - guest_offset;
    return span;
  }
  const uint64_t l2_offset = l1_[l1_index] & kOffsetMask;
  if (l2_offset == 0) {
    span.length = limit - guest_offset;
    return span;
  }
  QK_ASSIGN_OR_RETURN(TablePtr l2, load_l2_locked(l2_offset));

  const bool extended = header_.extended_l2();
  const uint64_t unit_size = extended ? subcluster_size_ : cluster_size_;

  auto classify = [&](uint64_t unit_offset) QK_REQUIRES(mutex_) -> Result<Unit> {
    const uint64_t index = (unit_offset / cluster_size_) % l2_entries_;
    const uint64_t entry = l2_entry(*l2, index);
    const uint64_t in_cluster = unit_offset % cluster_size_;
    Unit u;
    if (entry & kCompressed) {
      u.kind = SpanKind::compressed;
      const CompressedStream stream = decode_compressed(entry, cluster_bits_);
      u.compressed_offset = stream.offset;
      u.compressed_bytes = stream.bytes;
      if (extended && l2_bitmap(*l2, index) != 0)
        return corruption_locked("compressed cluster at guest offset " + hex(unit_offset) +
                                 " has subcluster bits set");
      return u;
    }
    const uint64_t host = entry & kOffsetMask;
    const uint64_t reserved = extended ? (kL2ReservedMask | kZeroFlag) : kL2ReservedMask;
    if (entry & reserved)
      return corruption_locked("L2 entry for guest offset " + hex(unit_offset) + " has reserved bits set");
    if (host % cluster_size_ != 0)
      return corruption_locked("data cluster " + hex(host) + " for guest offset " + hex(unit_offset) +
                               " is not cluster aligned");
    u.copied = entry & kCopied;
    if (!extended) {
      if (entry & kZeroFlag) {
        u.kind = SpanKind::zero;
        u.preallocated = host != 0;
        if (host) u.host = host + in_cluster;
      } else if (host != 0) {
        u.kind = SpanKind::data;
        u.host = host + in_cluster;
      }
      return u;
    }
    const uint64_t bitmap = l2_bitmap(*l2, index);
    const unsigned sc = static_cast<unsigned>(in_cluster / subcluster_size_);
    const bool alloc = (bitmap >> sc) & 1, zero = (bitmap >> (32 + sc)) & 1;
    if (host == 0 && (bitmap & 0xffffffffu))
      return corruption_locked("unallocated cluster at guest offset " + hex(unit_offset) +
                               " has allocated subclusters");
    if (alloc && zero)
      return corruption_locked("subcluster at guest offset " + hex(unit_offset) +
                               " is both allocated and zero");
    if (alloc) {
      u.kind = SpanKind::data;
      u.host = host + in_cluster;
    } else {
      // A zero or unallocated subcluster may still sit in an allocated cluster.
      u.kind = zero ? SpanKind::zero : SpanKind::unallocated;
      u.preallocated = host != 0;
      if (host) u.host = host + in_cluster;
    }
    return u;
  };

  uint64_t unit_start = guest_offset - guest_offset % unit_size;
  QK_ASSIGN_OR_RETURN(Unit first, classify(unit_start));
  span.kind = first.kind;
  span.copied = first.copied;
  span.preallocated = first.preallocated;
  const bool has_host = first.kind == SpanKind::data || first.preallocated;
  if (has_host) span.host_offset = first.host + (guest_offset - unit_start);
  if (first.kind == SpanKind::compressed) {
    // One compressed cluster at a time: each has a stream of its own.
    span.compressed_offset = first.compressed_offset;
    span.compressed_bytes = first.compressed_bytes;
    const uint64_t cluster_end = guest_offset - guest_offset % cluster_size_ + cluster_size_;
    span.length = std::min(limit, cluster_end) - guest_offset;
    return span;
  }
  uint64_t pos = unit_start + unit_size;
  uint64_t expected_host = first.host + unit_size;
  // Fast path for the bulk of a sparse image: runs of all-zero standard
  // entries (unallocated clusters) need no full classification.
  if (first.kind == SpanKind::unallocated && !first.copied && !extended) {
    while (pos < limit && l2_entry(*l2, (pos / cluster_size_) % l2_entries_) == 0)
      pos += unit_size;
  }
  while (pos < limit) {
    QK_ASSIGN_OR_RETURN(Unit u, classify(pos));
    if (u.kind != first.kind || u.copied != first.copied || u.preallocated != first.preallocated)
      break;
    if (has_host && u.host != expected_host) break;
    expected_host += unit_size;
    pos += unit_size;
  }
  span.length = std::min(pos, limit) - guest_offset;
  return span;
}

bool Qcow2Image::Impl::is_metadata_cluster(uint64_t cluster_index) const {
  return metadata_clusters_.count(cluster_index) != 0;
}

}  // namespace qcowkit
