// A bounded cache of cluster-sized metadata tables (L2 tables and refcount
// blocks), keyed by their host offset, least recently used first out.
//
// The cache only keeps the bookkeeping; the image decides how a dirty table
// is written back (L2 tables must wait for the refcount blocks, see
// Qcow2Image::Impl::evict). A table someone still holds a pointer to is
// pinned: it is never chosen as a victim.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

namespace qcowkit::qcow2 {

enum class TableKind : uint8_t { l2, refcount_block };

struct CachedTable {
  uint64_t offset = 0;
  TableKind kind = TableKind::l2;
  bool dirty = false;
  std::vector<uint8_t> data;
};

using TablePtr = std::shared_ptr<CachedTable>;

class MetadataCache {
 public:
  explicit MetadataCache(size_t capacity_tables) : capacity_(capacity_tables < 8 ? 8 : capacity_tables) {}

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
  size_t capacity_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;  // front = most recently used
};

}  // namespace qcowkit::qcow2
