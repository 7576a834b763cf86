// PageTable, the block cache's page index, against std::map as the model:
// random inserts, erases and lookups, including page numbers chosen to
// collide in long probe runs that wrap around the end of the slot array.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "cache/page_table.hpp"

using qcowkit::cache::PageTable;

namespace {

struct Value {
  uint64_t tag = 0;
};

void require_same(const PageTable<Value>& table, const std::map<uint64_t, uint64_t>& model) {
  REQUIRE(table.size() == model.size());
  size_t seen = 0;
  for (const auto& [index, value] : table) {
    auto it = model.find(index);
    REQUIRE(it != model.end());
    REQUIRE(value.tag == it->second);
    ++seen;
  }
  REQUIRE(seen == model.size());
}

}  // namespace

TEST_CASE("PageTable: matches a map under random inserts, erases and lookups", "[cache]") {
  // Spread-out page numbers, neighbours, and multiples of a large power of
  // two (the kind of numbers a poor hash would pile into one slot).
  const int pattern = GENERATE(0, 1, 2);
  INFO("pattern " << pattern);
  std::mt19937_64 rng(1234 + pattern);
  auto pick = [&]() -> uint64_t {
    const uint64_t r = rng() % 3000;
    if (pattern == 0) return rng() % (1ull << 40);
    if (pattern == 1) return 1'000'000 + r;
    return r << 20;
  };
  PageTable<Value> table;
  std::map<uint64_t, uint64_t> model;
  std::vector<Value*> addresses;  // a reference must survive other inserts and erases
  for (int step = 0; step < 60000; ++step) {
    const uint64_t index = pick();
    switch (rng() % 4) {
      case 0:
      case 1: {  // insert or overwrite
        Value& value = table[index];
        value.tag = static_cast<uint64_t>(step);
        model[index] = static_cast<uint64_t>(step);
        break;
      }
      case 2: {  // erase
        auto it = table.find(index);
        REQUIRE((it != table.end()) == (model.count(index) == 1));
        if (it != table.end()) {
          REQUIRE(it->first == index);
          table.erase(it);
          model.erase(index);
        }
        break;
      }
      default: {  // look up
        REQUIRE(table.count(index) == model.count(index));
        if (model.count(index)) REQUIRE(table.at(index).tag == model[index]);
        break;
      }
    }
    if (step % 5000 == 0) require_same(table, model);
  }
  require_same(table, model);

  // References stay put while other pages come and go.
  const uint64_t kept = 7ull << 50;
  Value& anchor = table[kept];
  anchor.tag = 42;
  for (int i = 0; i < 20000; ++i) {
    table[static_cast<uint64_t>(i) << 21].tag = 1;
    if (i % 2) table.erase(table.find(static_cast<uint64_t>(i - 1) << 21));
  }
  REQUIRE(&table.at(kept) == &anchor);
  REQUIRE(anchor.tag == 42);

  // Erase everything through find, then the table is empty and usable.
  std::vector<uint64_t> keys;
  for (const auto& [index, value] : table) keys.push_back(index);
  for (uint64_t index : keys) table.erase(table.find(index));
  REQUIRE(table.empty());
  REQUIRE(table.begin() == table.end());
  REQUIRE(table.count(kept) == 0);
  REQUIRE_THROWS_AS(table.at(kept), std::out_of_range);
  table[3].tag = 3;
  REQUIRE(table.size() == 1);
  table.clear();
  REQUIRE(table.count(3) == 0);
}
