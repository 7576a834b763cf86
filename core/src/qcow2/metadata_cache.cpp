#include "qcow2/metadata_cache.hpp"

#include <algorithm>

namespace qcowkit::qcow2 {

std::unique_ptr<CachedTable> SpareTables::take() {
  MutexLock lock(mutex_);
  if (spare_.empty()) return nullptr;
  std::unique_ptr<CachedTable> table = std::move(spare_.back());
  spare_.pop_back();
  return table;
}

void SpareTables::give_back(CachedTable* table) {
  std::unique_ptr<CachedTable> owned(table);
  MutexLock lock(mutex_);
  if (spare_.size() < limit_) spare_.push_back(std::move(owned));
}

TablePtr MetadataCache::new_table(uint64_t offset, TableKind kind, size_t bytes) {
  std::unique_ptr<CachedTable> table = spares_->take();
  if (!table) table = std::make_unique<CachedTable>();
  table->offset = offset;
  table->kind = kind;
  table->dirty = false;
  table->data.assign(bytes, 0);  // keeps a reused buffer
  return TablePtr(table.release(),
                  [spares = spares_](CachedTable* t) { spares->give_back(t); });
}

TablePtr MetadataCache::find(uint64_t offset) {
  auto it = entries_.find(offset);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru_position);
  return it->second.table;
}

void MetadataCache::insert(TablePtr table) {
  const uint64_t offset = table->offset;
  erase(offset);
  lru_.push_front(offset);
  entries_.emplace(offset, Entry{std::move(table), lru_.begin()});
}

void MetadataCache::erase(uint64_t offset) {
  auto it = entries_.find(offset);
  if (it == entries_.end()) return;
  lru_.erase(it->second.lru_position);
  entries_.erase(it);
}

TablePtr MetadataCache::victim() const {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    const TablePtr& t = entries_.at(*it).table;
    if (t.use_count() == 1) return t;
  }
  return nullptr;
}

std::vector<TablePtr> MetadataCache::dirty_tables(TableKind kind) const {
  std::vector<TablePtr> out;
  for (const auto& [offset, entry] : entries_)
    if (entry.table->dirty && entry.table->kind == kind) out.push_back(entry.table);
  std::sort(out.begin(), out.end(),
            [](const TablePtr& a, const TablePtr& b) { return a->offset < b->offset; });
  return out;
}

}  // namespace qcowkit::qcow2
