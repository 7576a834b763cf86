// PageBuffers, the block cache's pool of page buffers: never more buffers
// than its limit, no buffer handed out twice, buffers given back reused
// before a new slab is cut.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "cache/page_buffers.hpp"

using qcowkit::cache::PageBuffers;

TEST_CASE("PageBuffers: hands out distinct, writable buffers up to its limit", "[cache]") {
  constexpr uint32_t kPage = 4096;
  constexpr uint64_t kLimit = 700;  // one 2 MiB slab (512 pages), then one cut short
  PageBuffers buffers(kPage, kLimit);
  std::set<uint8_t*> distinct;
  std::vector<uint8_t*> taken;
  for (uint64_t i = 0; i < kLimit; ++i) {
    uint8_t* b = buffers.take();
    std::memset(b, static_cast<int>(i % 251), kPage);
    REQUIRE(distinct.insert(b).second);
    taken.push_back(b);
  }
  REQUIRE(buffers.allocated() == kLimit);  // the second slab was cut short
  REQUIRE(buffers.spare() == 0);
  // No two overlap: every buffer still holds its own bytes whole.
  for (uint64_t i = 0; i < kLimit; ++i) {
    std::vector<uint8_t> expected(kPage, static_cast<uint8_t>(i % 251));
    REQUIRE(std::memcmp(taken[i], expected.data(), kPage) == 0);
  }
}

TEST_CASE("PageBuffers: buffers given back are reused before new memory", "[cache]") {
  constexpr uint32_t kPage = 512;
  PageBuffers buffers(kPage, 10000);
  std::vector<uint8_t*> taken;
  for (int i = 0; i < 5; ++i) taken.push_back(buffers.take());
  const uint64_t allocated = buffers.allocated();
  REQUIRE(allocated >= 5);
  for (uint8_t* b : taken) buffers.give_back(b);
  REQUIRE(buffers.spare() == allocated);
  for (uint64_t i = 0; i < allocated; ++i) buffers.take();
  REQUIRE(buffers.allocated() == allocated);  // nothing new until the spares ran out
  REQUIRE(buffers.spare() == 0);
  buffers.take();
  REQUIRE(buffers.allocated() > allocated);
  buffers.clear();
  REQUIRE(buffers.allocated() == 0);
  REQUIRE(buffers.spare() == 0);
}
