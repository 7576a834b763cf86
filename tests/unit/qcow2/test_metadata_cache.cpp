// The metadata cache's table buffers: tables let go, by whichever thread
// drops the last reference, are reused for the next new table, up to a
// bound (see metadata_cache.hpp for why).
#include <algorithm>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "heap_counter.hpp"
#include "qcow2/metadata_cache.hpp"

using namespace qcowkit::qcow2;

TEST_CASE("a new metadata table is clean and zeroed, whatever table its buffer held before",
          "[qcow2][cache]") {
  MetadataCache cache(8);
  TablePtr table = cache.new_table(65536, TableKind::l2, 65536);
  table->dirty = true;
  std::fill(table->data.begin(), table->data.end(), 0xab);
  std::thread([t = std::move(table)]() mutable { t.reset(); }).join();

  TablePtr next = cache.new_table(131072, TableKind::refcount_block, 65536);
  CHECK(next->offset == 131072);
  CHECK(next->kind == TableKind::refcount_block);
  CHECK_FALSE(next->dirty);
  REQUIRE(next->data.size() == 65536);
  CHECK(std::all_of(next->data.begin(), next->data.end(), [](uint8_t b) { return b == 0; }));

  // A table still held (by the cache or anyone) is never handed out again.
  cache.insert(next);
  TablePtr other = cache.new_table(196608, TableKind::l2, 65536);
  CHECK(other->data.data() != next->data.data());
}

TEST_CASE("a new metadata table after one was let go takes no new table memory", "[qcow2][cache]") {
  using qcowkit::test::heap_bytes_in_use;
  MetadataCache cache(512);  // keeps 32 spares
  std::vector<TablePtr> tables;
  for (uint64_t i = 0; i < 16; ++i) tables.push_back(cache.new_table(i * 65536, TableKind::l2, 65536));
  std::thread([&tables] { tables.clear(); }).join();
  // The 16 buffers wait as spares: 16 new tables need only their
  // shared_ptr bookkeeping, far less than one 64K buffer.
  const uint64_t before = heap_bytes_in_use();
  for (uint64_t i = 0; i < 16; ++i) tables.push_back(cache.new_table(i * 65536, TableKind::l2, 65536));
  CHECK(heap_bytes_in_use() - before < 16384);
}

TEST_CASE("the metadata cache keeps an eighth of its capacity in spare tables", "[qcow2][cache]") {
  using qcowkit::test::heap_bytes_in_use;
  MetadataCache cache(16);  // keeps 2 spares
  std::vector<TablePtr> tables;
  for (uint64_t i = 0; i < 16; ++i) tables.push_back(cache.new_table(i * 65536, TableKind::l2, 65536));
  const uint64_t held = heap_bytes_in_use();
  tables.clear();
  // 14 of the 16 buffers went back to the heap; 2 wait as spares.
  CHECK(held - heap_bytes_in_use() >= 14 * 65536);
  CHECK(held - heap_bytes_in_use() < 15 * 65536);
}
