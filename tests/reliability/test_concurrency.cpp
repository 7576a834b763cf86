// Concurrency: 8 threads of mixed reads, writes, zeroes, discards and flushes
// on one qcow2 image. Each thread owns interleaved 3 KiB stripes (so threads
// share clusters and L2 tables and allocate side by side) and checks its own
// stripes as it goes; afterwards the whole image must equal the union of what
// the threads wrote, check must find nothing, and a reopen must agree.
// Clean under ThreadSanitizer: `make tsan` (or ctest --preset tsan -R concurrency).
#include <atomic>
#include <thread>

#include "reliability_support.hpp"

using namespace qcowkit;
using namespace qcowkit::reliability;

namespace {

constexpr int kThreads = 8;
constexpr uint64_t kStripe = 3 * 1024;

struct Shared {
  std::vector<uint8_t> expected;  // each thread writes only its own stripes
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex failure_mutex;

  void failed(const std::string& what) {
    std::lock_guard lock(failure_mutex);
    if (failures++ == 0) first_failure = what;
  }
};

void worker(BlockDevice& device, Shared& shared, int id, uint64_t size, int operations) {
  std::mt19937_64 rng(1000 + id);
  const uint64_t stripes = size / kStripe;
  for (int op = 0; op < operations && shared.failures == 0; ++op) {
    // One of my stripes (index % kThreads == id), or part of it.
    const uint64_t stripe = (rng() % (stripes / kThreads)) * kThreads + id;
    const uint64_t offset = stripe * kStripe + (rng() % 6) * 512;
    const uint64_t length = std::min<uint64_t>((1 + rng() % 6) * 512, (stripe + 1) * kStripe - offset);
    const unsigned what = rng() % 100;
    Status st;
    if (what < 40) {
      std::vector<uint8_t> data(length);
      for (auto& b : data) b = static_cast<uint8_t>(rng() | 1);
      st = device.write(offset, data);
      if (st.ok()) std::memcpy(shared.expected.data() + offset, data.data(), length);
    } else if (what < 50) {
      st = device.write_zeroes(offset, length, {.may_trim = (what & 1) != 0});
      if (st.ok()) std::memset(shared.expected.data() + offset, 0, length);
    } else if (what < 58) {
      st = device.discard(offset, length);
      if (st.ok()) std::memset(shared.expected.data() + offset, 0, length);
    } else if (what < 62) {
      st = device.flush();
    } else if (what < 66) {
      // A read across everybody's stripes: content unknown, must not fail.
      std::vector<uint8_t> data(64u << 10);
      const uint64_t at = (rng() % (size / data.size())) * data.size();
      st = device.read(at, data);
    } else {
      std::vector<uint8_t> data(length);
      st = device.read(offset, data);
      if (st.ok() && std::memcmp(data.data(), shared.expected.data() + offset, length) != 0)
        shared.failed("thread " + std::to_string(id) + ": read at " + std::to_string(offset) +
                      " differs from what it wrote");
    }
    if (!st.ok()) shared.failed("thread " + std::to_string(id) + ": " + st.error().message);
  }
}

void hammer(BlockDevice& device, uint64_t size, int operations) {
  Shared shared;
  shared.expected.assign(size, 0);
  std::vector<std::thread> threads;
  for (int id = 0; id < kThreads; ++id)
    threads.emplace_back(worker, std::ref(device), std::ref(shared), id, size, operations);
  for (auto& t : threads) t.join();
  INFO(shared.first_failure);
  REQUIRE(shared.failures == 0);
  std::vector<uint8_t> now(size);
  REQUIRE_OK(device.read(0, now));
  REQUIRE(first_difference(now, shared.expected) == -1);
}

}  // namespace

TEST_CASE("8 threads of mixed I/O on one qcow2 image", "[reliability][concurrency]") {
  for (uint32_t cluster_size : {4096u, 65536u}) {
    INFO("cluster size " << cluster_size);
    const uint64_t size = 4u << 20;
    auto disk = std::make_shared<MemoryDevice>(0);
    create_image(disk, {cluster_size, 16, 3, size});
    auto image = open_image(disk);
    hammer(*image, size, 1500);
    REQUIRE_OK(image->flush());
    auto report = image->check(RepairMode::none);
    REQUIRE_OK(report);
    INFO((report->messages.empty() ? std::string() : report->messages[0]));
    REQUIRE(report->corruptions == 0);
    REQUIRE(report->leaks == 0);
    std::vector<uint8_t> before(size);
    REQUIRE_OK(image->read(0, before));
    REQUIRE_OK(image->close());
    auto reopened = open_image(disk);
    std::vector<uint8_t> after(size);
    REQUIRE_OK(reopened->read(0, after));
    REQUIRE(first_difference(after, before) == -1);
  }
}

// The BlockCache half switches on once core has it (see CMakeLists.txt).
#ifdef QCOWKIT_HAVE_BLOCK_CACHE
#include "qcowkit/block_cache.hpp"

// With a cache small enough that write-back runs under the threads, and 3 KiB
// stripes sharing pages, this once caught a partial-page write reading the
// device while a neighbour's discard of the same page was in flight (see
// "BlockCache: the device is not read under a discard in flight").
TEST_CASE("8 threads of mixed I/O on one BlockCache", "[reliability][concurrency][cache]") {
  // With write-around on (the default), once write-back has timed the fast
  // disk most writes go to it directly, racing the cached ones' write-back.
  for (const bool around : {false, true})
  for (uint32_t page_size : {4096u, 65536u}) {
    INFO("page size " << page_size << (around ? ", write-around" : ""));
    const uint64_t size = 4u << 20;
    auto disk = std::make_shared<MemoryDevice>(size);
    BlockCacheOptions options;
    options.page_size = page_size;
    options.max_size = 64 * uint64_t{page_size};  // small: write-back runs under the threads
    options.cache_reads = page_size == 4096;
    options.write_around_fast_device = around;
    auto cache = BlockCache::create(disk, options);
    REQUIRE_OK(cache);
    hammer(**cache, size, 1500);
    REQUIRE((*cache)->stats().peak_memory_bytes <= options.max_size);
    std::vector<uint8_t> seen(size);
    REQUIRE_OK((*cache)->read(0, seen));
    REQUIRE_OK((*cache)->write_back_all());
    std::vector<uint8_t> durable(size);
    REQUIRE_OK(disk->read(0, durable));
    REQUIRE(first_difference(durable, seen) == -1);
    REQUIRE_OK((*cache)->close());
  }
}

TEST_CASE("8 threads on a qcow2 image over a BlockCache", "[reliability][concurrency][cache]") {
  const uint64_t size = 4u << 20;
  auto disk = std::make_shared<MemoryDevice>(0);
  BlockCacheOptions options;
  options.max_size = 256u << 10;
  auto cache = BlockCache::create(disk, options);
  REQUIRE_OK(cache);
  std::shared_ptr<BlockDevice> cached(std::move(*cache));
  create_image(cached, {4096, 16, 3, size});
  auto image = open_image(cached);
  hammer(*image, size, 1000);
  REQUIRE_OK(image->flush());
  auto report = image->check(RepairMode::none);
  REQUIRE_OK(report);
  REQUIRE(report->corruptions == 0);
  REQUIRE(report->leaks == 0);
  std::vector<uint8_t> before(size);
  REQUIRE_OK(image->read(0, before));
  REQUIRE_OK(image->close());
  // Straight from the device: after write-back the cache holds nothing the
  // device lacks. (Closing the cache would close the device as well.)
  REQUIRE_OK(static_cast<BlockCache&>(*cached).write_back_all());
  auto reopened = open_image(disk);
  std::vector<uint8_t> after(size);
  REQUIRE_OK(reopened->read(0, after));
  REQUIRE(first_difference(after, before) == -1);
}
#endif
