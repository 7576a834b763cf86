// BlockCache durability under interleavings: a flush (or a FUA write) that
// returned OK must leave every write acknowledged before it began in the
// device below, written and flushed. Each test stops device calls at a door
// to force one interleaving of write-back, rewrites, pass-throughs and
// flushes, then cuts the power of a FaultyDevice (a volatile write cache)
// and looks at what survived.
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "qcowkit/block_cache.hpp"
#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr uint32_t kPage = 4096;

// Stops chosen device calls at the door. arm(op, offset) makes the next call
// of that kind starting at `offset` wait there until release(op, offset);
// wait_held() returns once it is waiting. Other calls pass straight through.
class DoorDevice final : public BlockDevice {
 public:
  enum class Op { write, discard, write_zeroes };

  explicit DoorDevice(std::shared_ptr<BlockDevice> inner) : inner_(std::move(inner)) {}

  void arm(Op op, uint64_t offset) {
    std::lock_guard l(m_);
    gates_[{op, offset}] = Gate{};
  }
  void wait_held(Op op, uint64_t offset) {
    std::unique_lock l(m_);
    cv_.wait(l, [&] { return gates_.at({op, offset}).held; });
  }
  void release(Op op, uint64_t offset) {
    std::lock_guard l(m_);
    gates_.at({op, offset}).released = true;
    cv_.notify_all();
  }

  DeviceInfo info() const override { return inner_->info(); }
  Status read(uint64_t o, ByteSpan b) override { return inner_->read(o, b); }
  Status write(uint64_t o, ConstByteSpan d, WriteFlags f) override {
    door(Op::write, o);
    return inner_->write(o, d, f);
  }
  Status flush() override { return inner_->flush(); }
  Status discard(uint64_t o, uint64_t n) override {
    door(Op::discard, o);
    return inner_->discard(o, n);
  }
  Status write_zeroes(uint64_t o, uint64_t n, ZeroFlags f) override {
    door(Op::write_zeroes, o);
    return inner_->write_zeroes(o, n, f);
  }
  Status resize(uint64_t n) override { return inner_->resize(n); }
  Result<std::vector<Extent>> extents(uint64_t o, uint64_t n) override { return inner_->extents(o, n); }
  Status close() override { return inner_->close(); }

 private:
  struct Gate { bool held = false, released = false, used = false; };

  void door(Op op, uint64_t offset) {
    std::unique_lock l(m_);
    auto it = gates_.find({op, offset});
    if (it == gates_.end() || it->second.used) return;
    it->second.used = true;
    it->second.held = true;
    cv_.notify_all();
    cv_.wait(l, [&] { return it->second.released; });
  }

  std::shared_ptr<BlockDevice> inner_;
  std::mutex m_;
  std::condition_variable cv_;
  std::map<std::pair<Op, uint64_t>, Gate> gates_;
};

std::unique_ptr<BlockCache> make_cache(std::shared_ptr<BlockDevice> dev, BlockCacheOptions o = {}) {
  auto cache = BlockCache::create(std::move(dev), o);
  INFO((cache.ok() ? std::string() : cache.error().message));
  REQUIRE(cache.ok());
  return std::move(cache).value();
}

bool all_bytes(const std::vector<uint8_t>& v, uint8_t value) {
  for (uint8_t b : v)
    if (b != value) return false;
  return true;
}

}  // namespace

TEST_CASE("BlockCache: flush writes a page rewritten during its write-back",
          "[cache][durability][threads]") {
  // Page P's old bytes are on their way to the device (held at the door):
  // written back by an earlier flush, or to make room in a full cache. A
  // write changes P and is acknowledged. A second flush begins (it is known
  // to have begun once its own first device write arrives), then the old
  // write-back completes. The second flush must write P's new bytes before
  // it returns.
  const bool full_cache = GENERATE(false, true);
  INFO((full_cache ? "write-back to make room" : "write-back by a flush"));
  auto durable = std::make_shared<MemoryDevice>(4u << 20);
  auto faulty = std::make_shared<FaultyDevice>(durable);
  auto door = std::make_shared<DoorDevice>(faulty);
  BlockCacheOptions o;
  o.max_size = 64 * kPage;  // 48 pages of data, 16 of write-back copies
  o.writeback_parallelism = 1;
  auto cache = make_cache(door, o);
  using Op = DoorDevice::Op;

  const uint64_t p = 0;
  std::map<uint64_t, std::vector<uint8_t>> expect;  // page -> last acknowledged bytes
  auto write_page = [&](uint64_t index, uint64_t seed) {
    expect[index] = pattern_bytes(kPage, seed);
    REQUIRE_OK(cache->write(index * kPage, expect[index]));
  };

  door->arm(Op::write, p * kPage);
  std::future<Status> first;
  uint64_t q;  // the first page the second flush writes itself
  if (full_cache) {
    // 48 dirty pages fill the cache, P the oldest; one more write needs
    // room, and the oldest three pages (0-2, one run from P) go back.
    for (uint64_t index = 0; index < 48; ++index) write_page(index, 100 + index);
    expect[200] = pattern_bytes(kPage, 200);
    first = std::async(std::launch::async, [&] { return cache->write(200 * kPage, expect[200]); });
    q = 3;
  } else {
    write_page(p, 1);
    first = std::async(std::launch::async, [&] { return cache->flush(); });
    q = 10;
  }
  door->wait_held(Op::write, p * kPage);

  write_page(p, 2);  // acknowledged while P's old bytes are being written
  if (!full_cache) write_page(q, 3);

  door->arm(Op::write, q * kPage);
  auto second = std::async(std::launch::async, [&] { return cache->flush(); });
  door->wait_held(Op::write, q * kPage);  // the second flush has begun
  door->release(Op::write, q * kPage);
  door->release(Op::write, p * kPage);
  REQUIRE_OK(first.get());
  REQUIRE_OK(second.get());

  // Everything acknowledged before the second flush began (all of `expect`
  // but page 200, written concurrently with it) survives a power cut.
  faulty->power_cut();
  for (const auto& [index, bytes] : expect) {
    if (index == 200) continue;
    INFO("page " << index);
    CHECK(read_all(*durable, index * kPage, kPage) == bytes);
  }
}

TEST_CASE("BlockCache: flush waits for a discard that dropped a dirty page",
          "[cache][durability][threads]") {
  // P holds an acknowledged write, cached dirty. A discard of P drops the
  // page (its bytes are superseded) and is held at the device's door. A
  // flush meanwhile must not return before the discard reached the device
  // and was flushed: otherwise, after a power cut, P holds neither the
  // acknowledged write nor the discard's zeroes but the bytes from before.
  const bool zero = GENERATE(false, true);
  INFO((zero ? "write_zeroes" : "discard"));
  auto durable = std::make_shared<MemoryDevice>(4u << 20);
  const uint64_t p = 5;
  REQUIRE_OK(durable->write(p * kPage, std::vector<uint8_t>(kPage, 0xAA)));
  auto faulty = std::make_shared<FaultyDevice>(durable);
  auto door = std::make_shared<DoorDevice>(faulty);
  auto cache = make_cache(door);
  using Op = DoorDevice::Op;

  const auto acknowledged = pattern_bytes(kPage, 7);
  REQUIRE_OK(cache->write(p * kPage, acknowledged));
  const Op op = zero ? Op::write_zeroes : Op::discard;
  door->arm(op, p * kPage);
  auto dropped = std::async(std::launch::async, [&] {
    return zero ? cache->write_zeroes(p * kPage, kPage) : cache->discard(p * kPage, kPage);
  });
  door->wait_held(op, p * kPage);
  auto flushed = std::async(std::launch::async, [&] { return cache->flush(); });
  // A broken cache returns from the flush now; a fixed one waits for the
  // discard. The wait only gives a broken cache time to go wrong: what is
  // checked below holds however the threads are scheduled.
  (void)flushed.wait_for(std::chrono::milliseconds(100));
  // What a power cut right after the flush returned would keep.
  std::vector<uint8_t> at_flush;
  if (flushed.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    REQUIRE_OK(flushed.get());
    at_flush = read_all(*durable, p * kPage, kPage);
    door->release(op, p * kPage);
  } else {
    door->release(op, p * kPage);
    REQUIRE_OK(flushed.get());
    at_flush = read_all(*durable, p * kPage, kPage);
  }
  REQUIRE_OK(dropped.get());
  INFO("byte 0 after the flush: " << int(at_flush[0]));
  CHECK((at_flush == acknowledged || all_bytes(at_flush, 0)));
}

TEST_CASE("BlockCache: a failed pass-through does not lose the dirty pages it dropped",
          "[cache][durability][faulty]") {
  // P holds an acknowledged write, cached dirty. A discard, zero or large
  // write over P drops the page and fails at the device. The device holds
  // neither P's acknowledged bytes nor the failed call's, so the page must
  // come back: reads see it and the next flush makes it durable.
  const int kind = GENERATE(0, 1, 2);
  const char* names[] = {"discard", "write_zeroes", "large write"};
  INFO(names[kind]);
  auto durable = std::make_shared<MemoryDevice>(4u << 20);
  const uint64_t p = 20;
  REQUIRE_OK(durable->write(p * kPage, std::vector<uint8_t>(kPage, 0xAA)));
  auto faulty = std::make_shared<FaultyDevice>(durable);
  BlockCacheOptions o;
  o.max_size = 64 * kPage;  // writes above 12 pages pass through
  auto cache = make_cache(faulty, o);

  const auto acknowledged = pattern_bytes(kPage, 9);
  REQUIRE_OK(cache->write(p * kPage, acknowledged));
  const auto large = pattern_bytes(16 * kPage, 10);  // pages p-4 .. p+11
  const FaultOp op = kind == 0 ? FaultOp::discard : kind == 1 ? FaultOp::write_zeroes : FaultOp::write;
  faulty->fail_nth(1, EIO, op);
  Status failed = kind == 0   ? cache->discard(p * kPage, kPage)
                  : kind == 1 ? cache->write_zeroes(p * kPage, kPage)
                              : cache->write((p - 4) * kPage, large);
  REQUIRE_FALSE(failed.ok());
  faulty->clear_faults();

  // After a failed request its range may read old or new bytes, but not
  // bytes older than an acknowledged write.
  const std::vector<uint8_t> new_bytes =
      kind == 2 ? std::vector<uint8_t>(large.begin() + 4 * kPage, large.begin() + 5 * kPage)
                : std::vector<uint8_t>(kPage, 0);
  const auto seen = read_all(*cache, p * kPage, kPage);
  CHECK((seen == acknowledged || seen == new_bytes));
  REQUIRE_OK(cache->flush());
  faulty->power_cut();
  const auto kept = read_all(*durable, p * kPage, kPage);
  INFO("byte 0 after the flush: " << int(kept[0]));
  CHECK(kept == seen);
  REQUIRE(cache->stats().peak_memory_bytes <= o.max_size);
}
