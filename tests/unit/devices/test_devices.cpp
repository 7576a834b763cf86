// BlockDevice contract tests, run against every core device.
#include <cstring>
#include <memory>

#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/file_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

// Runs the shared contract against a freshly made 4 MiB device.
void check_contract(BlockDevice& dev) {
  const uint64_t size = dev.info().size;
  REQUIRE(size == 4u << 20);

  SECTION("a new device reads as zeroes") {
    auto data = read_all(dev, 0, 8192);
    REQUIRE(is_all_zero(data));
  }
  SECTION("writes read back, across chunk boundaries") {
    auto data = pattern_bytes(200000, 1);
    REQUIRE_OK(dev.write(60000, data));
    REQUIRE(read_all(dev, 60000, data.size()) == data);
    REQUIRE_OK(dev.flush());
  }
  SECTION("out-of-range requests fail with ERANGE") {
    std::vector<uint8_t> buf(4096);
    auto st = dev.read(size - 2048, buf);
    REQUIRE_FALSE(st.ok());
    REQUIRE(st.error().code == ERANGE);
    REQUIRE(dev.write(size, ConstByteSpan(buf.data(), 1)).error().code == ERANGE);
    REQUIRE(dev.write_zeroes(UINT64_MAX - 10, 20).error().code == ERANGE);
  }
  SECTION("write_zeroes and discard clear data") {
    auto data = pattern_bytes(300000, 2);
    REQUIRE_OK(dev.write(0, data));
    REQUIRE_OK(dev.write_zeroes(1000, 5000));
    REQUIRE_OK(dev.discard(131072, 131072));
    auto back = read_all(dev, 0, data.size());
    std::memset(data.data() + 1000, 0, 5000);
    std::memset(data.data() + 131072, 0, 131072);
    REQUIRE(back == data);
  }
  SECTION("extents are contiguous and cover the range") {
    auto data = pattern_bytes(65536, 3);
    REQUIRE_OK(dev.write(1 << 20, data));
    uint64_t pos = 0;
    bool saw_data = false;
    REQUIRE_OK(for_each_extent(dev, 0, size, [&](const Extent& e) {
      REQUIRE(e.offset == pos);
      pos += e.length;
      if (e.kind == ExtentKind::data && e.offset <= (1u << 20) &&
          e.offset + e.length >= (1u << 20) + 65536)
        saw_data = true;
      return Status{};
    }));
    REQUIRE(pos == size);
    REQUIRE(saw_data);
  }
  SECTION("resize grows with zeroes and shrinks") {
    auto data = pattern_bytes(4096, 4);
    REQUIRE_OK(dev.write(size - 4096, data));
    REQUIRE_OK(dev.resize(size / 2));
    REQUIRE(dev.info().size == size / 2);
    REQUIRE_OK(dev.resize(size * 2));
    REQUIRE(is_all_zero(read_all(dev, size - 4096, 4096)));
  }
  SECTION("use after close fails with EBADF") {
    REQUIRE_OK(dev.close());
    std::vector<uint8_t> buf(512);
    auto st = dev.read(0, buf);
    REQUIRE_FALSE(st.ok());
    REQUIRE(st.error().code == EBADF);
    REQUIRE_OK(dev.close());
  }
}

}  // namespace

TEST_CASE("MemoryDevice honours the BlockDevice contract", "[devices]") {
  MemoryDevice dev(4u << 20);
  check_contract(dev);
}

TEST_CASE("FileDevice honours the BlockDevice contract", "[devices]") {
  TempDir tmp;
  auto dev = FileDevice::open(tmp.file("f.img"), {.create = true});
  REQUIRE_OK(dev);
  REQUIRE_OK((*dev)->resize(4u << 20));
  check_contract(**dev);
}

TEST_CASE("FaultyDevice honours the BlockDevice contract", "[devices]") {
  FaultyDevice dev(std::make_shared<MemoryDevice>(4u << 20));
  check_contract(dev);
}

TEST_CASE("MemoryDevice is sparse", "[devices]") {
  MemoryDevice dev(uint64_t{1} << 40);  // 1 TiB
  REQUIRE(dev.allocated_bytes() == 0);
  auto data = pattern_bytes(4096, 5);
  REQUIRE_OK(dev.write(uint64_t{1} << 39, data));
  REQUIRE(dev.allocated_bytes() == MemoryDevice::kChunkSize);
  auto ext = dev.extents(0, uint64_t{1} << 40);
  REQUIRE_OK(ext);
  REQUIRE(ext->size() == 3);
  REQUIRE((*ext)[0].kind == ExtentKind::hole);
  REQUIRE((*ext)[1].kind == ExtentKind::data);
  REQUIRE_OK(dev.discard(uint64_t{1} << 39, MemoryDevice::kChunkSize));
  REQUIRE(dev.allocated_bytes() == 0);
}

TEST_CASE("misaligned requests fail with EINVAL", "[devices]") {
  MemoryDevice dev(1 << 20, 512);
  std::vector<uint8_t> buf(512);
  REQUIRE(dev.read(100, buf).error().code == EINVAL);
  REQUIRE(dev.write(0, ConstByteSpan(buf.data(), 100)).error().code == EINVAL);
  REQUIRE_OK(dev.write(512, buf));
}

TEST_CASE("read-only devices refuse writes with EROFS", "[devices]") {
  MemoryDevice mem(1 << 20, 1, true);
  std::vector<uint8_t> buf(512);
  REQUIRE(mem.write(0, buf).error().code == EROFS);
  REQUIRE(mem.discard(0, 512).error().code == EROFS);
  REQUIRE(mem.resize(0).error().code == EROFS);

  TempDir tmp;
  {
    auto f = FileDevice::open(tmp.file("ro.img"), {.create = true});
    REQUIRE_OK(f);
    REQUIRE_OK((*f)->resize(1 << 20));
  }
  auto ro = FileDevice::open(tmp.file("ro.img"), {.read_only = true});
  REQUIRE_OK(ro);
  REQUIRE((*ro)->info().read_only);
  REQUIRE((*ro)->write(0, buf).error().code == EROFS);
}

TEST_CASE("FileDevice reports holes and punches them", "[devices]") {
  TempDir tmp;
  auto f = FileDevice::open(tmp.file("sparse.img"), {.create = true});
  REQUIRE_OK(f);
  auto& dev = **f;
  REQUIRE_OK(dev.resize(64u << 20));
  auto data = pattern_bytes(1 << 20, 6);
  REQUIRE_OK(dev.write(8u << 20, data));
  uint64_t data_bytes = 0;
  REQUIRE_OK(for_each_extent(dev, 0, 64u << 20, [&](const Extent& e) {
    if (e.kind == ExtentKind::data) data_bytes += e.length;
    return Status{};
  }));
  // Filesystems may round allocation up, but a 64 MiB file holding 1 MiB is
  // far from fully allocated on anything that supports SEEK_HOLE.
  REQUIRE(data_bytes >= (1u << 20));
  REQUIRE(data_bytes < (16u << 20));
  REQUIRE_OK(dev.discard(8u << 20, 1 << 20));
  REQUIRE(is_all_zero(read_all(dev, 8u << 20, 1 << 20)));
}

TEST_CASE("FileDevice: a missing file is a clear error", "[devices]") {
  auto f = FileDevice::open("/nonexistent/dir/x.img");
  REQUIRE_FALSE(f.ok());
  REQUIRE(f.error().code == ENOENT);
  REQUIRE(f.error().message.find("/nonexistent/dir/x.img") != std::string::npos);
}

TEST_CASE("FaultyDevice: a power cut drops unflushed writes only", "[devices][faulty]") {
  auto durable = std::make_shared<MemoryDevice>(1 << 20);
  FaultyDevice dev(durable);
  auto a = pattern_bytes(4096, 7), b = pattern_bytes(4096, 8);
  REQUIRE_OK(dev.write(0, a));
  REQUIRE_OK(dev.flush());
  REQUIRE_OK(dev.write(0, b));
  REQUIRE_OK(dev.write(8192, b));
  REQUIRE(read_all(dev, 0, 4096) == b);  // the writer sees its own writes
  REQUIRE(dev.unflushed_operations() == 2);
  dev.power_cut();
  REQUIRE_FALSE(dev.powered());
  std::vector<uint8_t> buf(4096);
  REQUIRE(dev.read(0, buf).error().code == EIO);
  dev.revive();
  REQUIRE(read_all(dev, 0, 4096) == a);
  REQUIRE(is_all_zero(read_all(dev, 8192, 4096)));
}

TEST_CASE("FaultyDevice: FUA writes survive a power cut", "[devices][faulty]") {
  FaultyDevice dev(std::make_shared<MemoryDevice>(1 << 20));
  auto a = pattern_bytes(4096, 9);
  REQUIRE_OK(dev.write(4096, a, {.fua = true}));
  dev.power_cut();
  dev.revive();
  REQUIRE(read_all(dev, 4096, 4096) == a);
}

TEST_CASE("FaultyDevice: fails the Nth operation with the chosen errno", "[devices][faulty]") {
  FaultyDevice dev(std::make_shared<MemoryDevice>(1 << 20));
  std::vector<uint8_t> buf(512);
  dev.fail_nth(3, ENOSPC, FaultOp::write);
  REQUIRE_OK(dev.write(0, buf));
  REQUIRE_OK(dev.read(0, buf));  // reads are not counted
  REQUIRE_OK(dev.write(512, buf));
  auto st = dev.write(1024, buf);
  REQUIRE(st.error().code == ENOSPC);
  REQUIRE_OK(dev.write(1024, buf));  // not sticky: the next one works

  dev.fail_range(65536, 4096, EIO, FaultOp::read);
  auto r = dev.read(65536 + 512, buf);
  REQUIRE(r.error().code == EIO);
  REQUIRE(r.error().message.find("66048") != std::string::npos);  // the first failing byte
  REQUIRE_OK(dev.read(0, buf));
}

TEST_CASE("FaultyDevice: cut_power_after counts mutating operations", "[devices][faulty]") {
  FaultyDevice dev(std::make_shared<MemoryDevice>(1 << 20));
  std::vector<uint8_t> buf(512, 1);
  dev.cut_power_after(2);
  REQUIRE_OK(dev.write(0, buf));
  REQUIRE_OK(dev.flush());
  REQUIRE_OK(dev.write(512, buf));
  REQUIRE(dev.write(1024, buf).error().code == EIO);
  REQUIRE_FALSE(dev.powered());
  dev.revive();
  REQUIRE(read_all(dev, 0, 512) == buf);
  REQUIRE(is_all_zero(read_all(dev, 512, 512)));
}

TEST_CASE("FaultyDevice: a partial power cut keeps a subset of the log", "[devices][faulty]") {
  auto durable = std::make_shared<MemoryDevice>(1 << 20);
  FaultyDevice dev(durable);
  std::vector<uint8_t> buf(512, 0xab);
  for (int i = 0; i < 100; ++i) REQUIRE_OK(dev.write(i * 512, buf));
  dev.power_cut(0.5, 42);
  dev.revive();
  int kept = 0;
  for (int i = 0; i < 100; ++i) kept += read_all(dev, i * 512, 512) == buf;
  REQUIRE(kept > 20);
  REQUIRE(kept < 80);
}
