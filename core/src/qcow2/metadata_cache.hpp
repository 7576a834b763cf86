// A bounded cache of cluster-sized metadata tables (L2 tables and refcount
// blocks), keyed by their host offset, least recently used first out.
//
// The cache only keeps the bookkeeping; the image decides how a dirty table
// is written back (L2 tables must wait for the refcount blocks, see
// Qcow2Image::Impl::evict). A table someone still holds a pointer to is
// pinned: it is never chosen as a victim.
//
// Tables come from new_table(), which reuses the buffers of tables let go
// (by any thread): malloc would put each new table in the arena of the
// thread that asked and each freed one back in its own, and under many
// threads (nbdkit's parallel model) the arenas together came to hold twice
// the cache's bound.
//
// Thread safety: the cache itself is guarded by its owner (the image's
// mutex); new_table() and the release of a table are safe from any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "qcowkit/mutex.hpp"

namespace qcowkit::qcow2 {

enum class TableKind : uint8_t { l2, refcount_block };

struct CachedTable {
  uint64_t offset = 0;
  TableKind kind = TableKind::l2;
  bool dirty = false;
  std::vector<uint8_t> data;
};

using TablePtr = std::shared_ptr<CachedTable>;

// Buffers of released tables, kept for the next new_table().
class SpareTables {
 public:
  explicit SpareTables(size_t limit) : limit_(limit) {}
  std::unique_ptr<CachedTable> take();
  void give_back(CachedTable* table);  // owns it from here

 private:
  const size_t limit_;
  Mutex mutex_;
  std::vector<std::unique_ptr<CachedTable>> spare_ QK_GUARDED_BY(mutex_);
};

class MetadataCache {
 public:
  explicit MetadataCache(size_t capacity_tables)
      : capacity_(capacity_tables < 8 ? 8 : capacity_tables),
        spares_(std::make_shared<SpareTables>(std::clamp<size_t>(capacity_ / 8, 1, kSpareLimit))) {}

  // A clean table of `bytes` zero bytes for `offset`, not yet in the cache.
  TablePtr new_table(uint64_t offset, TableKind kind, size_t bytes);

  TablePtr find(uint64_t offset);  // marks it most recently used
  void insert(TablePtr table);     // as most recently used
  void erase(uint64_t offset);
  void clear() { entries_.clear(); lru_.clear(); }

  bool over_capacity() const { return entries_.size() > capacity_; }
  // The least recently used table nobody holds, or nullptr.
  TablePtr victim() const;

  // Dirty tables of one kind, in offset order (so write-back is sequential).
  std::vector<TablePtr> dirty_tables(TableKind kind) const;
  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    TablePtr table;
    std::list<uint64_t>::iterator lru_position;
  };
  // Spares cover a burst of evictions and loads; beyond them buffers go
  // back to malloc. An eighth of the cache, at most 32 tables (2 MiB of
  // 64K tables; a cache of 2 MiB tables keeps 2).
  static constexpr size_t kSpareLimit = 32;
  size_t capacity_;
  std::shared_ptr<SpareTables> spares_;  // shared with the tables' deleters
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;  // front = most recently used
};

}  // namespace qcowkit::qcow2
