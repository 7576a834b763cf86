// Block operations (compare, fold*, copy, sparse_copy, fill_random) on
// memory and file devices, including their error paths.
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "ops_test_devices.hpp"
#include "qcowkit/block_ops.hpp"
#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/file_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, TiB = MiB * MiB;
// Deliberately not a multiple of any chunk size used below.
constexpr uint64_t kOddSize = MiB + 4608;

enum class Kind { memory, file };

std::shared_ptr<BlockDevice> make_device(Kind kind, uint64_t size, const TempDir& tmp,
                                         const std::string& name, uint32_t sector = 1) {
  if (kind == Kind::memory) return std::make_shared<MemoryDevice>(size, sector);
  auto f = FileDevice::open(tmp.file(name), {.create = true, .truncate = true});
  REQUIRE_OK(f);
  REQUIRE_OK((*f)->resize(size));
  return std::shared_ptr<BlockDevice>(std::move(f).value());
}

// Options with a chunk size and parallelism (0 = the default).
CopyOptions sized(uint64_t chunk_size, unsigned parallelism = 0) {
  CopyOptions options;
  options.chunk_size = chunk_size;
  options.parallelism = parallelism;
  return options;
}

const char* kind_name(Kind kind) { return kind == Kind::memory ? "memory" : "file"; }

// Writes pattern data at each offset, `length` bytes each.
void put_data(BlockDevice& dev, std::initializer_list<uint64_t> offsets, size_t length,
              uint64_t seed = 1) {
  for (uint64_t off : offsets) REQUIRE_OK(dev.write(off, pattern_bytes(length, seed++)));
}

bool contains(const std::string& text, uint64_t number) {
  return text.find(std::to_string(number)) != std::string::npos;
}

uint64_t data_bytes(BlockDevice& dev) {
  uint64_t total = 0;
  REQUIRE_OK(for_each_extent(dev, 0, dev.info().size, [&](const Extent& e) {
    if (e.kind == ExtentKind::data) total += e.length;
    return Status{};
  }));
  return total;
}

// Records progress calls and checks they are monotonic and never overlap.
struct ProgressLog {
  std::mutex mutex;
  std::atomic<int> inside{0};
  bool overlapped = false, monotonic = true;
  uint64_t last_done = 0, last_total = 0, calls = 0;

  ProgressFn fn() {
    return [this](uint64_t done, uint64_t total) {
      if (inside.fetch_add(1) != 0) overlapped = true;
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // widen any race
      {
        std::lock_guard lock(mutex);
        if (done < last_done || done > total) monotonic = false;
        last_done = done;
        last_total = total;
        ++calls;
      }
      inside.fetch_sub(1);
    };
  }
};

}  // namespace

// ---------------------------------------------------------------- fill_random

TEST_CASE("fill_random: the same seed gives the same bytes, whatever the chunking",
          "[ops][fill_random]") {
  TempDir tmp;
  for (Kind kind : {Kind::memory, Kind::file}) {
    INFO(kind_name(kind));
    auto a = make_device(kind, kOddSize, tmp, "a.img");
    auto b = make_device(Kind::memory, kOddSize, tmp, "b.img");
    auto c = make_device(Kind::memory, kOddSize, tmp, "c.img");
    ProgressLog log;
    CopyOptions coarse;
    coarse.chunk_size = 64 * KiB;
    coarse.parallelism = 4;
    coarse.progress = log.fn();
    REQUIRE_OK(fill_random(*a, 7, coarse));
    REQUIRE_OK(fill_random(*b, 7, sized(4096 + 8 + 3, 1)));
    REQUIRE_OK(fill_random(*c, 8));
    const auto bytes_a = read_all(*a, 0, kOddSize);
    REQUIRE(bytes_a == read_all(*b, 0, kOddSize));
    REQUIRE(bytes_a != read_all(*c, 0, kOddSize));
    REQUIRE_FALSE(log.overlapped);
    REQUIRE(log.monotonic);
    REQUIRE(log.last_done == kOddSize);
    REQUIRE(log.last_total == kOddSize);
  }
}

TEST_CASE("fill_random: known answer for seed 0 (splitmix64, little endian)",
          "[ops][fill_random]") {
  MemoryDevice dev(4096);
  REQUIRE_OK(fill_random(dev, 0));
  const auto bytes = read_all(dev, 0, 16);
  // splitmix64 from state 0 starts 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4.
  const std::vector<uint8_t> expected = {0xaf, 0xcd, 0x1d, 0x7b, 0x39, 0xa8, 0x20, 0xe2,
                                         0xf4, 0x65, 0xb9, 0xa1, 0x6a, 0x9e, 0x78, 0x6e};
  REQUIRE(bytes == expected);
}

TEST_CASE("fill_random: refuses a read-only device, handles an empty one", "[ops][fill_random]") {
  MemoryDevice ro(MiB, 1, true);
  auto st = fill_random(ro, 1);
  REQUIRE(st.error().code == EROFS);

  MemoryDevice empty(0);
  ProgressLog log;
  OpOptions options;
  options.progress = log.fn();
  REQUIRE_OK(fill_random(empty, 1, options));
  REQUIRE(log.calls == 1);  // (0, 0): done
  REQUIRE(log.last_done == 0);

  MemoryDevice dev(MiB);
  REQUIRE(fill_random(dev, 1, sized(0)).error().code == EINVAL);
  REQUIRE(fill_random(dev, 1, sized(64 * KiB, 1000)).error().code ==
          EINVAL);
}

TEST_CASE("fill_random: a write error names its offset", "[ops][fill_random]") {
  FaultyDevice dev(std::make_shared<MemoryDevice>(4 * MiB), false);
  dev.fail_range(3 * MiB, 4096, EIO, FaultOp::write);
  auto st = fill_random(dev, 1, sized(256 * KiB));
  REQUIRE_FALSE(st.ok());
  REQUIRE(st.error().code == EIO);
  INFO(st.error().message);
  REQUIRE(st.error().message.find("write failed at offset 3145728") != std::string::npos);
}

// -------------------------------------------------------------------- compare

TEST_CASE("compare: equal contents, memory against file", "[ops][compare]") {
  TempDir tmp;
  auto a = make_device(Kind::memory, kOddSize, tmp, "a.img");
  auto b = make_device(Kind::file, kOddSize, tmp, "b.img");
  put_data(*a, {0, 300000, kOddSize - 5000}, 5000);
  put_data(*b, {0, 300000, kOddSize - 5000}, 5000);
  ProgressLog log;
  OpOptions options;
  options.chunk_size = 64 * KiB;
  options.progress = log.fn();
  auto r = compare(*a, *b, options);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
  REQUIRE_FALSE(r->sizes_differ);
  REQUIRE_FALSE(r->first_difference);
  REQUIRE(log.last_done == kOddSize);
  REQUIRE(log.monotonic);
  REQUIRE_FALSE(log.overlapped);
}

TEST_CASE("compare: reports the first differing byte", "[ops][compare]") {
  TempDir tmp;
  for (Kind kind : {Kind::memory, Kind::file}) {
    for (unsigned parallelism : {1u, 4u}) {
      for (uint64_t where : {uint64_t{0}, uint64_t{65535}, uint64_t{700001}, kOddSize - 1}) {
        INFO(kind_name(kind) << " parallelism " << parallelism << " at " << where);
        auto a = make_device(kind, kOddSize, tmp, "a.img");
        auto b = make_device(kind, kOddSize, tmp, "b.img");
        REQUIRE_OK(fill_random(*a, 3));
        REQUIRE_OK(fill_random(*b, 3));
        std::vector<uint8_t> byte = read_all(*b, where, 1);
        byte[0] ^= 0x40;
        REQUIRE_OK(b->write(where, byte));
        // A later difference too: the earliest one must win.
        if (where + 100000 < kOddSize) REQUIRE_OK(b->write(where + 100000, byte));
        auto r = compare(*a, *b, sized(64 * KiB, parallelism));
        REQUIRE_OK(r);
        REQUIRE_FALSE(r->equal);
        REQUIRE(r->first_difference == where);
      }
    }
  }
}

TEST_CASE("compare: different sizes are a result, not an error", "[ops][compare]") {
  MemoryDevice a(MiB), b(2 * MiB);
  auto r = compare(a, b);
  REQUIRE_OK(r);
  REQUIRE_FALSE(r->equal);
  REQUIRE(r->sizes_differ);
  REQUIRE(r->a_size == MiB);
  REQUIRE(r->b_size == 2 * MiB);
}

TEST_CASE("compare: empty devices are equal", "[ops][compare]") {
  TempDir tmp;
  auto a = make_device(Kind::file, 0, tmp, "a.img");
  MemoryDevice b(0);
  auto r = compare(*a, b);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
}

TEST_CASE("compare: data that reads as zeroes equals a hole", "[ops][compare]") {
  MemoryDevice a(4 * MiB), b(4 * MiB);
  REQUIRE_OK(a.write(MiB, std::vector<uint8_t>(200 * KiB, 0)));  // allocated, all zero
  REQUIRE(a.allocated_bytes() > 0);
  auto r = compare(a, b);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
}

TEST_CASE("compare: a 1 TiB sparse device is compared by its data only", "[ops][compare]") {
  auto a_mem = std::make_shared<MemoryDevice>(TiB);
  auto b_mem = std::make_shared<MemoryDevice>(TiB);
  put_data(*a_mem, {0, TiB / 2 + 12345, TiB - 8192}, 8192);
  put_data(*b_mem, {0, TiB / 2 + 12345, TiB - 8192}, 8192);
  CountingDevice a(a_mem), b(b_mem);
  auto r = compare(a, b);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
  REQUIRE(a.bytes_read < 8 * MiB);  // three 1 MiB chunks at most, not a terabyte
  REQUIRE(b.bytes_read < 8 * MiB);

  std::vector<uint8_t> byte = read_all(*b_mem, TiB - 100, 1);
  byte[0] ^= 1;
  REQUIRE_OK(b_mem->write(TiB - 100, byte));
  ProgressLog log;
  OpOptions options;
  options.progress = log.fn();
  r = compare(a, b, options);
  REQUIRE_OK(r);
  REQUIRE(r->first_difference == TiB - 100);
  REQUIRE(log.last_done == TiB);  // an answer ends the progress too
}

TEST_CASE("compare: devices with different sector sizes", "[ops][compare]") {
  // Extents of the 512-byte device are not aligned for the 4096-byte one.
  MemoryDevice a(4 * MiB, 512), b(4 * MiB, 4096);
  auto data = pattern_bytes(4096, 11);
  REQUIRE_OK(a.write(65536 + 4096, data));
  REQUIRE_OK(b.write(65536 + 4096, data));
  auto r = compare(a, b, sized(1000));  // rounded up to 4096
  REQUIRE_OK(r);
  REQUIRE(r->equal);
  data[1536 + 3] ^= 1;
  REQUIRE_OK(a.write(65536 + 4096, data));
  r = compare(a, b, sized(1000));
  REQUIRE_OK(r);
  REQUIRE(r->first_difference == 65536 + 4096 + 1536 + 3);
}

TEST_CASE("compare: a read error names its offset", "[ops][compare]") {
  auto mem = std::make_shared<MemoryDevice>(4 * MiB);
  REQUIRE_OK(fill_random(*mem, 5));
  MemoryDevice other(4 * MiB);
  REQUIRE_OK(fill_random(other, 5));
  FaultyDevice faulty(mem, false);
  faulty.fail_range(3 * MiB, 4096, EIO, FaultOp::read);
  auto r = compare(faulty, other, sized(256 * KiB, 3));
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.error().code == EIO);
  INFO(r.error().message);
  REQUIRE(contains(r.error().message, 3 * MiB));
}

// ----------------------------------------------------------------------- fold

TEST_CASE("fold: visits every chunk in order, the last one shorter", "[ops][fold]") {
  TempDir tmp;
  for (Kind kind : {Kind::memory, Kind::file}) {
    INFO(kind_name(kind));
    auto dev = make_device(kind, kOddSize, tmp, "f.img");
    REQUIRE_OK(fill_random(*dev, 9));
    std::vector<uint8_t> seen;
    uint64_t expected_offset = 0;
    REQUIRE_OK(fold(*dev, 64 * KiB, [&](uint64_t offset, ConstByteSpan data) {
      REQUIRE(offset == expected_offset);
      REQUIRE(data.size() == std::min<uint64_t>(64 * KiB, kOddSize - offset));
      seen.insert(seen.end(), data.begin(), data.end());
      expected_offset += data.size();
      return Status{};
    }));
    REQUIRE(expected_offset == kOddSize);
    REQUIRE(seen == read_all(*dev, 0, kOddSize));
  }
}

TEST_CASE("fold: an empty device is never visited and bad chunk sizes are refused", "[ops][fold]") {
  MemoryDevice empty(0);
  int calls = 0;
  REQUIRE_OK(fold(empty, 4096, [&](uint64_t, ConstByteSpan) { ++calls; return Status{}; }));
  REQUIRE_OK(fold_mapped(empty, 4096, [&](uint64_t, ConstByteSpan) { ++calls; return Status{}; }));
  REQUIRE_OK(fold_unmapped(empty, [&](uint64_t, uint64_t) { ++calls; return Status{}; }));
  REQUIRE(calls == 0);
  MemoryDevice dev(MiB);
  auto st = fold(dev, 0, [](uint64_t, ConstByteSpan) { return Status{}; });
  REQUIRE(st.error().code == EINVAL);
  st = fold(dev, uint64_t{1} << 40, [](uint64_t, ConstByteSpan) { return Status{}; });
  REQUIRE(st.error().code == EINVAL);
}

TEST_CASE("fold: the callback's error stops the fold", "[ops][fold]") {
  MemoryDevice dev(MiB);
  int calls = 0;
  auto st = fold(dev, 64 * KiB, [&](uint64_t offset, ConstByteSpan) -> Status {
    ++calls;
    if (offset == 128 * KiB) return make_error(ECANCELED, "stop here");
    return {};
  });
  REQUIRE(st.error().code == ECANCELED);
  REQUIRE(calls == 3);
}

TEST_CASE("fold: a read error names its offset", "[ops][fold]") {
  FaultyDevice dev(std::make_shared<MemoryDevice>(4 * MiB), false);
  REQUIRE_OK(fill_random(dev, 1));
  dev.fail_range(2 * MiB + 65536, 512, EIO, FaultOp::read);
  auto st = fold(dev, 65536, [](uint64_t, ConstByteSpan) { return Status{}; });
  REQUIRE(st.error().code == EIO);
  INFO(st.error().message);
  REQUIRE(st.error().message.find("read failed at offset 2162688") != std::string::npos);
  st = fold_mapped(dev, 65536, [](uint64_t, ConstByteSpan) { return Status{}; });
  REQUIRE(st.error().code == EIO);
  REQUIRE(contains(st.error().message, 2162688));
}

TEST_CASE("fold_mapped: visits the data and skips holes", "[ops][fold]") {
  TempDir tmp;
  for (Kind kind : {Kind::memory, Kind::file}) {
    INFO(kind_name(kind));
    auto dev = make_device(kind, 64 * MiB, tmp, "m.img");
    put_data(*dev, {2 * MiB, 40 * MiB + 4096}, 200 * KiB);
    uint64_t visited = 0;
    std::vector<uint8_t> seen_at_2m;
    REQUIRE_OK(fold_mapped(*dev, 64 * KiB, [&](uint64_t offset, ConstByteSpan data) {
      REQUIRE(data.size() <= 64 * KiB);
      // Never straddles a chunk-grid boundary, like fold's chunks.
      REQUIRE((offset % (64 * KiB)) + data.size() <= 64 * KiB);
      visited += data.size();
      if (offset >= 2 * MiB && offset < 2 * MiB + 200 * KiB)
        seen_at_2m.insert(seen_at_2m.end(), data.begin(), data.end());
      return Status{};
    }));
    REQUIRE(visited >= 400 * KiB);
    REQUIRE(visited <= 8 * MiB);  // file systems may allocate a little around the data
    REQUIRE(seen_at_2m.size() >= 200 * KiB);
    REQUIRE(std::vector<uint8_t>(seen_at_2m.begin(), seen_at_2m.begin() + 200 * KiB) ==
            read_all(*dev, 2 * MiB, 200 * KiB));
  }
}

TEST_CASE("fold_mapped: a 1 TiB sparse device costs only its data", "[ops][fold]") {
  auto mem = std::make_shared<MemoryDevice>(TiB);
  put_data(*mem, {TiB / 3 - (TiB / 3) % 4096, TiB - 65536}, 65536);
  CountingDevice dev(mem);
  uint64_t visited = 0;
  REQUIRE_OK(fold_mapped(dev, MiB, [&](uint64_t, ConstByteSpan data) {
    visited += data.size();
    return Status{};
  }));
  REQUIRE(visited >= 2 * 65536);
  REQUIRE(dev.bytes_read < 4 * MiB);
}

TEST_CASE("fold_unmapped: maximal zero and hole ranges, never empty", "[ops][fold]") {
  auto mem = std::make_shared<MemoryDevice>(4 * MiB);
  // Zero next to hole is one unmapped range; data splits ranges.
  ScriptedExtentsDevice dev(mem, {
      {0, 64 * KiB, ExtentKind::data},
      {64 * KiB, 64 * KiB, ExtentKind::zero},
      {128 * KiB, 896 * KiB, ExtentKind::hole},
      {MiB, 64 * KiB, ExtentKind::data},
      {MiB + 64 * KiB, 64 * KiB, ExtentKind::data},
      {MiB + 128 * KiB, 4 * MiB - MiB - 128 * KiB - 4096, ExtentKind::hole},
      {4 * MiB - 4096, 4096, ExtentKind::zero},
  });
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  REQUIRE_OK(fold_unmapped(dev, [&](uint64_t offset, uint64_t length) {
    REQUIRE(length > 0);
    ranges.emplace_back(offset, length);
    return Status{};
  }));
  REQUIRE(ranges == std::vector<std::pair<uint64_t, uint64_t>>{
                        {64 * KiB, MiB - 64 * KiB}, {MiB + 128 * KiB, 3 * MiB - 128 * KiB}});
}

TEST_CASE("fold_unmapped: memory and file devices", "[ops][fold]") {
  TempDir tmp;
  for (Kind kind : {Kind::memory, Kind::file}) {
    INFO(kind_name(kind));
    auto dev = make_device(kind, 16 * MiB, tmp, "u.img");
    uint64_t unmapped = 0, calls = 0;
    auto count = [&](uint64_t, uint64_t length) {
      unmapped += length;
      ++calls;
      return Status{};
    };
    REQUIRE_OK(fold_unmapped(*dev, count));
    REQUIRE(calls == 1);
    REQUIRE(unmapped == 16 * MiB);
    put_data(*dev, {8 * MiB}, 4096);
    unmapped = calls = 0;
    REQUIRE_OK(fold_unmapped(*dev, count));
    REQUIRE(calls == 2);
    REQUIRE(unmapped >= 8 * MiB);
    REQUIRE(unmapped + data_bytes(*dev) == 16 * MiB);
  }
}

TEST_CASE("extents that break the contract are a clear error", "[ops][fold]") {
  auto mem = std::make_shared<MemoryDevice>(MiB);
  ScriptedExtentsDevice gap(
      mem, {{0, 4096, ExtentKind::hole}, {8192, MiB - 8192, ExtentKind::hole}});
  auto st = fold_unmapped(gap, [](uint64_t, uint64_t) { return Status{}; });
  REQUIRE(st.error().code == EIO);
  REQUIRE(st.error().message.find("invalid extent") != std::string::npos);
  ScriptedExtentsDevice none(mem, {});
  st = fold_mapped(none, 4096, [](uint64_t, ConstByteSpan) { return Status{}; });
  REQUIRE(st.error().code == EIO);
}

// ----------------------------------------------------------------------- copy

TEST_CASE("copy: memory to file and file to memory", "[ops][copy]") {
  TempDir tmp;
  for (unsigned parallelism : {1u, 4u}) {
    INFO("parallelism " << parallelism);
    auto src = make_device(Kind::memory, kOddSize, tmp, "src.img");
    auto mid = make_device(Kind::file, kOddSize, tmp, "mid.img");
    auto dst = make_device(Kind::memory, kOddSize, tmp, "dst.img");
    REQUIRE_OK(fill_random(*src, 21));
    ProgressLog log;
    CopyOptions options;
    options.chunk_size = 64 * KiB;
    options.parallelism = parallelism;
    options.progress = log.fn();
    REQUIRE_OK(copy(*src, *mid, options));
    REQUIRE_OK(copy(*mid, *dst, {}));
    REQUIRE(read_all(*dst, 0, kOddSize) == read_all(*src, 0, kOddSize));
    REQUIRE(log.last_done == kOddSize);
    REQUIRE(log.last_total == kOddSize);
    REQUIRE(log.monotonic);
    REQUIRE_FALSE(log.overlapped);
  }
}

TEST_CASE("copy: empty devices", "[ops][copy]") {
  MemoryDevice a(0), b(0);
  REQUIRE_OK(copy(a, b));
  REQUIRE_OK(sparse_copy(a, b));
}

TEST_CASE("copy and sparse_copy: different sizes fail with ERANGE before writing",
          "[ops][copy]") {
  MemoryDevice src(2 * MiB);
  REQUIRE_OK(fill_random(src, 1));
  auto inner = std::make_shared<MemoryDevice>(3 * MiB);
  CountingDevice dst(inner);
  for (auto op : {&copy, &sparse_copy}) {
    auto st = op(src, dst, {});
    REQUIRE(st.error().code == ERANGE);
    INFO(st.error().message);
    REQUIRE(contains(st.error().message, 2 * MiB));
    REQUIRE(contains(st.error().message, 3 * MiB));
  }
  REQUIRE(dst.writes == 0);
  REQUIRE(dst.zero_requests == 0);
}

TEST_CASE("copy and sparse_copy: a read-only destination fails with EROFS before writing",
          "[ops][copy]") {
  TempDir tmp;
  MemoryDevice src(MiB);
  REQUIRE_OK(fill_random(src, 1));
  {
    auto f = FileDevice::open(tmp.file("ro.img"), {.create = true});
    REQUIRE_OK(f);
    REQUIRE_OK((*f)->resize(MiB));
  }
  auto ro_file = FileDevice::open(tmp.file("ro.img"), {.read_only = true});
  REQUIRE_OK(ro_file);
  MemoryDevice ro_mem(MiB, 1, true);
  for (BlockDevice* dst : {static_cast<BlockDevice*>(ro_file->get()),
                           static_cast<BlockDevice*>(&ro_mem)}) {
    REQUIRE(copy(src, *dst).error().code == EROFS);
    REQUIRE(sparse_copy(src, *dst).error().code == EROFS);
    REQUIRE(is_all_zero(read_all(*dst, 0, MiB)));
  }
}

TEST_CASE("copy: I/O errors name the failing offset", "[ops][copy]") {
  auto src_mem = std::make_shared<MemoryDevice>(4 * MiB);
  REQUIRE_OK(fill_random(*src_mem, 2));
  SECTION("a read error in the source") {
    FaultyDevice src(src_mem, false);
    src.fail_range(MiB + 512 * KiB, 4096, EIO, FaultOp::read);
    MemoryDevice dst(4 * MiB);
    // Many small requests too: the pool must stop, not hang, after a failure.
    for (auto [chunk, parallelism] : {std::pair{256 * KiB, 4u}, std::pair{4 * KiB, 8u},
                                      std::pair{4 * KiB, 1u}}) {
      for (auto op : {&copy, &sparse_copy}) {
        auto st = op(src, dst, sized(chunk, parallelism));
        REQUIRE(st.error().code == EIO);
        INFO(st.error().message);
        REQUIRE(st.error().message.find("read failed at offset 1572864") != std::string::npos);
      }
    }
  }
  SECTION("a write error in the destination") {
    FaultyDevice dst(std::make_shared<MemoryDevice>(4 * MiB), false);
    dst.fail_range(3 * MiB, 4096, ENOSPC, FaultOp::write);
    auto st = copy(*src_mem, dst, sized(MiB, 2));
    REQUIRE(st.error().code == ENOSPC);
    INFO(st.error().message);
    REQUIRE(st.error().message.find("write failed at offset 3145728") != std::string::npos);
  }
}

TEST_CASE("sparse_copy: a write_zeroes error names its offset", "[ops][sparse_copy]") {
  MemoryDevice src(8 * MiB);
  put_data(src, {0}, 65536);
  FaultyDevice dst(std::make_shared<MemoryDevice>(8 * MiB), false);
  dst.fail_range(6 * MiB, 4096, EIO, FaultOp::write_zeroes);
  auto st = sparse_copy(src, dst, sized(MiB, 2));
  REQUIRE(st.error().code == EIO);
  INFO(st.error().message);
  // Holes are zeroed in one request from the end of the data onwards.
  REQUIRE(st.error().message.find("write_zeroes failed at offset 65536") != std::string::npos);
  REQUIRE(contains(st.error().message, 6 * MiB));  // the device's own words
}

TEST_CASE("copy: several requests are in flight at once (one without threads)", "[ops][copy]") {
  auto mem = std::make_shared<MemoryDevice>(16 * 64 * KiB);
  REQUIRE_OK(fill_random(*mem, 3));
  for (unsigned parallelism : {1u, 4u}) {
    CountingDevice src(mem, std::chrono::milliseconds(5));
    MemoryDevice dst(16 * 64 * KiB);
    REQUIRE_OK(copy(src, dst, sized(64 * KiB, parallelism)));
    REQUIRE(src.reads == 16);
#ifdef QCOWKIT_HAVE_THREADS
    if (parallelism == 1) {
      REQUIRE(src.max_reads_in_flight == 1);
    } else {
      REQUIRE(src.max_reads_in_flight > 1);
      REQUIRE(src.max_reads_in_flight <= parallelism);
    }
#else
    // Built without threads (as for WebAssembly): one request at a time.
    REQUIRE(src.max_reads_in_flight == 1);
#endif
  }
}

TEST_CASE("copy: chunks are rounded to both devices' sector sizes", "[ops][copy]") {
  MemoryDevice src(MiB, 512), dst(MiB, 4096);
  REQUIRE_OK(fill_random(src, 4, sized(512)));
  // 1000 bytes fits neither sector size; misaligned requests would be EINVAL.
  REQUIRE_OK(copy(src, dst, sized(1000)));
  REQUIRE(read_all(dst, 0, MiB) == read_all(src, 0, MiB));
}

// ---------------------------------------------------------------- sparse_copy

TEST_CASE("sparse_copy: holes stay holes on a memory destination", "[ops][sparse_copy]") {
  MemoryDevice src(64 * MiB);
  put_data(src, {MiB, 20 * MiB + 4096, 64 * MiB - 65536}, 65536);
  MemoryDevice dst(64 * MiB);
  REQUIRE_OK(fill_random(dst, 99));  // fully allocated, all of it must go
  ProgressLog log;
  CopyOptions options;
  options.progress = log.fn();
  REQUIRE_OK(sparse_copy(src, dst, options));
  auto r = compare(src, dst);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
  REQUIRE(dst.allocated_bytes() == src.allocated_bytes());
  auto src_extents = src.extents(0, 64 * MiB), dst_extents = dst.extents(0, 64 * MiB);
  REQUIRE_OK(src_extents);
  REQUIRE_OK(dst_extents);
  REQUIRE(*dst_extents == *src_extents);
  REQUIRE(log.last_done == 64 * MiB);
  REQUIRE(log.monotonic);
  REQUIRE_FALSE(log.overlapped);
}

TEST_CASE("sparse_copy: holes become trims unless destination_is_zero is set",
          "[ops][sparse_copy]") {
  MemoryDevice src(16 * MiB);
  put_data(src, {4 * MiB}, 100 * KiB);
  {
    CountingDevice dst(std::make_shared<MemoryDevice>(16 * MiB));
    REQUIRE_OK(sparse_copy(src, dst));
    REQUIRE(dst.zero_requests > 0);
    REQUIRE(dst.zero_trims == dst.zero_requests);
    REQUIRE(dst.zeroed_bytes >= 15 * MiB);
    REQUIRE(dst.bytes_written == 100 * KiB);
  }
  {
    CopyOptions options;
    options.destination_is_zero = true;
    CountingDevice dst(std::make_shared<MemoryDevice>(16 * MiB));
    REQUIRE_OK(sparse_copy(src, dst, options));
    REQUIRE(dst.zero_requests == 0);
    REQUIRE(dst.bytes_written == 100 * KiB);
    REQUIRE(read_all(dst, 4 * MiB, 100 * KiB) == read_all(src, 4 * MiB, 100 * KiB));
  }
}

TEST_CASE("sparse_copy: detect_zeroes turns zero data into holes", "[ops][sparse_copy]") {
  MemoryDevice src(8 * MiB);
  REQUIRE_OK(src.write(0, std::vector<uint8_t>(2 * MiB, 0)));  // allocated zeroes
  REQUIRE_OK(src.write(MiB + 8192, pattern_bytes(4096, 1)));    // a little data inside
  REQUIRE(src.allocated_bytes() == 2 * MiB);
  {
    MemoryDevice dst(8 * MiB);
    REQUIRE_OK(sparse_copy(src, dst));  // detect_zeroes is on by default
    REQUIRE(dst.allocated_bytes() == MemoryDevice::kChunkSize);
    REQUIRE(read_all(dst, MiB + 8192, 4096) == pattern_bytes(4096, 1));
  }
  {
    MemoryDevice dst(8 * MiB);
    CopyOptions options;
    options.detect_zeroes = false;
    REQUIRE_OK(sparse_copy(src, dst, options));
    REQUIRE(dst.allocated_bytes() == 2 * MiB);
  }
}

TEST_CASE("sparse_copy: a file destination keeps its holes (SEEK_HOLE)", "[ops][sparse_copy]") {
  TempDir tmp;
  auto src = make_device(Kind::file, 32 * MiB, tmp, "src.img");
  put_data(*src, {MiB, 20 * MiB}, 128 * KiB);
  auto dst = make_device(Kind::file, 32 * MiB, tmp, "dst.img");
  REQUIRE_OK(fill_random(*dst, 5));
  REQUIRE(data_bytes(*dst) == 32 * MiB);
  REQUIRE_OK(sparse_copy(*src, *dst));
  auto r = compare(*src, *dst);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
  // ext4 and friends may round to their block size, never to megabytes.
  const uint64_t mapped = data_bytes(*dst);
  REQUIRE(mapped >= 256 * KiB);
  REQUIRE(mapped <= 4 * MiB);
  auto around = dst->extents(10 * MiB, 4096);
  REQUIRE_OK(around);
  REQUIRE((*around)[0].kind == ExtentKind::hole);
  // And a memory destination from the same file source.
  MemoryDevice mem(32 * MiB);
  REQUIRE_OK(sparse_copy(*src, mem));
  REQUIRE(mem.allocated_bytes() <= 4 * MiB);
}

TEST_CASE("sparse_copy: a 1 TiB sparse device copies only its data", "[ops][sparse_copy]") {
  auto src_mem = std::make_shared<MemoryDevice>(TiB);
  put_data(*src_mem, {4096, TiB / 2, TiB - 4096}, 4096);
  CountingDevice src(src_mem);
  MemoryDevice dst(TiB);
  REQUIRE_OK(sparse_copy(src, dst));
  REQUIRE(src.bytes_read < 8 * MiB);
  REQUIRE(dst.allocated_bytes() == src_mem->allocated_bytes());
  auto r = compare(*src_mem, dst);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
}

// ------------------------------------------------------------------ randomized

TEST_CASE("randomized: the operations agree with each other on random sparse devices",
          "[ops][randomized]") {
  std::mt19937_64 rng(20261121);
  for (int round = 0; round < 40; ++round) {
    const uint32_t sector_a = 512u << (rng() % 4), sector_b = 512u << (rng() % 4);
    const uint64_t unit = std::max(sector_a, sector_b);
    const uint64_t size = unit * (1 + rng() % 512);
    INFO("round " << round << " size " << size << " sectors " << sector_a << "/" << sector_b);
    MemoryDevice src(size, sector_a);
    for (int i = 0, n = static_cast<int>(rng() % 8); i < n; ++i) {
      const uint64_t at = (rng() % (size / sector_a)) * sector_a;
      const uint64_t len = std::min<uint64_t>(size - at, sector_a * (1 + rng() % 300));
      if (rng() % 4 == 0)
        REQUIRE_OK(src.write(at, std::vector<uint8_t>(len, 0)));  // allocated zeroes
      else
        REQUIRE_OK(src.write(at, pattern_bytes(len, rng())));
    }
    CopyOptions options = sized(1 + rng() % (256 * KiB), 1 + rng() % 6);
    options.detect_zeroes = rng() % 2;

    // fold_mapped and fold_unmapped partition the device between them.
    uint64_t mapped = 0, unmapped = 0, last_end = 0;
    std::vector<std::pair<uint64_t, uint64_t>> pieces;
    REQUIRE_OK(fold_mapped(src, options.chunk_size, [&](uint64_t off, ConstByteSpan data) {
      pieces.emplace_back(off, data.size());
      mapped += data.size();
      REQUIRE(std::vector<uint8_t>(data.begin(), data.end()) == read_all(src, off, data.size()));
      return Status{};
    }));
    REQUIRE_OK(fold_unmapped(src, [&](uint64_t off, uint64_t len) {
      REQUIRE(is_all_zero(read_all(src, off, static_cast<size_t>(len))));
      pieces.emplace_back(off, len);
      unmapped += len;
      return Status{};
    }));
    std::sort(pieces.begin(), pieces.end());
    for (auto [off, len] : pieces) {
      REQUIRE(off == last_end);
      last_end = off + len;
    }
    REQUIRE(last_end == size);
    REQUIRE(mapped + unmapped == size);

    // sparse_copy and copy give equal devices; compare finds a planted byte.
    MemoryDevice dst(size, sector_b), full(size, sector_b);
    REQUIRE_OK(fill_random(dst, rng(), options));
    REQUIRE_OK(sparse_copy(src, dst, options));
    REQUIRE_OK(copy(src, full, options));
    auto r = compare(src, dst, options);
    REQUIRE_OK(r);
    REQUIRE(r->equal);
    const bool dst_equals_src = read_all(dst, 0, size) == read_all(src, 0, size);  // not only compare()'s word
    REQUIRE(dst_equals_src);
    REQUIRE(read_all(full, 0, size) == read_all(src, 0, size));
    REQUIRE(dst.allocated_bytes() <= full.allocated_bytes());
    const uint64_t planted = (rng() % (size / sector_b)) * sector_b + rng() % sector_b;
    std::vector<uint8_t> sector = read_all(dst, planted - planted % sector_b, sector_b);
    sector[planted % sector_b] ^= 0x80;
    REQUIRE_OK(dst.write(planted - planted % sector_b, sector));
    r = compare(src, dst, options);
    REQUIRE_OK(r);
    REQUIRE(r->first_difference == planted);
  }
}
