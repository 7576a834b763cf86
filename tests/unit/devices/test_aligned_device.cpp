// AlignedDevice: byte-granular requests over a device that takes only
// whole sectors, checked against a byte-granular model, from many threads,
// and under the qcow2 engine.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "qcowkit/aligned_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

TEST_CASE("AlignedDevice passes a byte-granular device through untouched", "[devices][aligned]") {
  auto mem = std::make_shared<MemoryDevice>(1 << 20);
  REQUIRE(AlignedDevice::over(mem) == mem);
  auto sectored = std::make_shared<MemoryDevice>(1 << 20, 512);
  auto aligned = AlignedDevice::over(sectored);
  REQUIRE(aligned != sectored);
  REQUIRE(aligned->info().sector_size == 1);
  REQUIRE(aligned->info().size == (1u << 20));
}

TEST_CASE("AlignedDevice: the size stops at the last whole sector", "[devices][aligned]") {
  AlignedDevice dev(std::make_shared<MemoryDevice>(1000, 512));
  REQUIRE(dev.info().size == 512);
  std::vector<uint8_t> buf(10);
  REQUIRE(dev.read(510, buf).error().code == ERANGE);
  REQUIRE_OK(dev.read(502, buf));
}

TEST_CASE("AlignedDevice matches a byte-granular model under random requests",
          "[devices][aligned]") {
  for (uint32_t sector : {512u, 4096u}) {
    INFO("sector " << sector);
    constexpr uint64_t kSize = 4u << 20;
    auto below = std::make_shared<MemoryDevice>(kSize, sector);
    AlignedDevice dev(below);
    MemoryDevice model(kSize);
    std::mt19937_64 rng(sector);
    for (int op = 0; op < 3000; ++op) {
      // Mostly small requests near sector edges, now and then one past the
      // bounce limit (1 MiB), so both paths run.
      const bool large = rng() % 40 == 0;
      const uint64_t length = large ? (1u << 20) + rng() % (1u << 20) : 1 + rng() % (3 * sector);
      const uint64_t offset = rng() % (kSize - length);
      const int kind = static_cast<int>(rng() % 5);
      INFO("op " << op << " kind " << kind << " at " << offset << "+" << length);
      if (kind <= 1) {
        auto data = pattern_bytes(length, op);
        REQUIRE_OK(dev.write(offset, data, WriteFlags{kind == 1}));
        REQUIRE_OK(model.write(offset, data));
      } else if (kind == 2) {
        REQUIRE_OK(dev.write_zeroes(offset, length, ZeroFlags{rng() % 2 == 0, false, false}));
        REQUIRE_OK(model.write_zeroes(offset, length));
      } else if (kind == 3) {
        REQUIRE_OK(dev.discard(offset, length));
        REQUIRE_OK(model.discard(offset, length));
      } else {
        REQUIRE(read_all(dev, offset, length) == read_all(model, offset, length));
      }
    }
    REQUIRE(read_all(dev, 0, kSize) == read_all(model, 0, kSize));
    REQUIRE(read_all(*below, 0, kSize) == read_all(model, 0, kSize));
  }
}

TEST_CASE("AlignedDevice: extents from an unaligned offset", "[devices][aligned]") {
  AlignedDevice dev(std::make_shared<MemoryDevice>(1 << 20, 512));
  auto data = pattern_bytes(100, 1);
  REQUIRE_OK(dev.write(MemoryDevice::kChunkSize + 700, data));
  uint64_t pos = 300;
  bool saw_data = false;
  REQUIRE_OK(for_each_extent(dev, 300, (1 << 20) - 301, [&](const Extent& e) {
    REQUIRE(e.offset == pos);
    pos += e.length;
    if (e.kind == ExtentKind::data && e.offset <= MemoryDevice::kChunkSize + 700 &&
        e.offset + e.length >= MemoryDevice::kChunkSize + 800)
      saw_data = true;
    return Status{};
  }));
  REQUIRE(pos == (1u << 20) - 1);
  REQUIRE(saw_data);
}

TEST_CASE("AlignedDevice: an unaligned fast zero is refused, not done slowly",
          "[devices][aligned]") {
  AlignedDevice dev(std::make_shared<MemoryDevice>(1 << 20, 512));
  REQUIRE(dev.write_zeroes(100, 1000, ZeroFlags{false, true, false}).error().code == ENOTSUP);
  REQUIRE_OK(dev.write_zeroes(512, 1024, ZeroFlags{false, true, false}));
}

TEST_CASE("AlignedDevice: writers of different bytes of one sector all land",
          "[devices][aligned][threads]") {
  // Each thread owns every kThreads-th byte of the first sectors and writes
  // its bytes one or two at a time, many rounds over: a read-modify-write
  // that another's overtook would bring back an old byte.
  constexpr int kThreads = 8;
  constexpr uint64_t kBytes = 2048;
  auto below = std::make_shared<MemoryDevice>(1 << 20, 512);
  AlignedDevice dev(below);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 1; round <= 40; ++round) {
        for (uint64_t at = t; at < kBytes; at += kThreads) {
          const uint8_t value = static_cast<uint8_t>(round * 16 + t);
          Status st = dev.write(at, ConstByteSpan(&value, 1));
          if (!st.ok()) {
            errors[t] = st.error().message;
            return;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) REQUIRE(e.empty());
  auto back = read_all(*below, 0, kBytes);
  for (uint64_t at = 0; at < kBytes; ++at) {
    INFO("byte " << at);
    REQUIRE(back[at] == static_cast<uint8_t>(40 * 16 + at % kThreads));
  }
}

TEST_CASE("AlignedDevice: a whole-sector write is never undone by a read-modify-write",
          "[devices][aligned][threads]") {
  // As the qcow2 engine may: one thread writes a table's sector whole while
  // others write entries in it. A read-modify-write that read the sector
  // before the whole write and wrote it back after would bring back the
  // old bytes around its entry.
  constexpr uint32_t kSector = 4096;
  constexpr int kRounds = 20000;
  auto below = std::make_shared<MemoryDevice>(1 << 20, kSector);
  AlignedDevice dev(below);
  std::atomic<bool> stop{false}, failed{false};
  std::vector<std::thread> patchers;
  for (int t = 0; t < 3; ++t) {
    patchers.emplace_back([&, t] {
      const uint8_t entry[8] = {uint8_t(t), 1, 2, 3, 4, 5, 6, 7};
      while (!stop)
        if (!dev.write(8 * t, ConstByteSpan(entry, 8)).ok()) failed = true;
    });
  }
  // After each whole write returns, the bytes no patcher writes must be
  // that write's, whatever read-modify-writes were in flight around it.
  std::vector<uint8_t> sector(kSector), back(kSector);
  int undone = 0;
  for (int round = 1; round <= kRounds; ++round) {
    std::fill(sector.begin(), sector.end(), static_cast<uint8_t>(round));
    REQUIRE_OK(dev.write(0, sector));
    REQUIRE_OK(below->read(0, back));
    if (std::any_of(back.begin() + 24, back.end(),
                    [&](uint8_t b) { return b != static_cast<uint8_t>(round); }))
      ++undone;
  }
  stop = true;
  for (auto& th : patchers) th.join();
  REQUIRE_FALSE(failed);
  REQUIRE(undone == 0);
}

TEST_CASE("AlignedDevice: a qcow2 image lives on a 512-byte-sector device", "[devices][aligned]") {
  auto below = std::make_shared<MemoryDevice>(64u << 20, 512);
  auto file = AlignedDevice::over(below);
  std::vector<uint8_t> expected(8u << 20);
  {
    Qcow2CreateOptions o;
    o.size = expected.size();
    auto image = Qcow2Image::create(file, o);
    REQUIRE_OK(image);
    std::mt19937_64 rng(7);
    for (int i = 0; i < 200; ++i) {
      const uint64_t length = 1 + rng() % 9000;
      const uint64_t offset = rng() % (expected.size() - length);
      auto data = pattern_bytes(length, i);
      REQUIRE_OK((*image)->write(offset, data));
      std::memcpy(expected.data() + offset, data.data(), length);
    }
    REQUIRE_OK((*image)->close());
  }
  auto image = Qcow2Image::open(file);
  REQUIRE_OK(image);
  REQUIRE(read_all(**image, 0, expected.size()) == expected);
  auto report = (*image)->check(RepairMode::none);
  REQUIRE_OK(report);
  REQUIRE(report->corruptions == 0);
  REQUIRE(report->leaks == 0);
}
