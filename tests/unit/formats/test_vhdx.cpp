// VHDX: round trips of dynamic and fixed images, 4096-byte sectors, the
// order of BAT updates, parallel writers, and the replay of a log entry
// built here by hand (read-only into memory, writable into the file).
#include <algorithm>
#include <cstring>
#include <thread>

#include "qcowkit/image_opener.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/vhdx.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr uint64_t MiB = 1 << 20;

uint64_t le(const std::vector<uint8_t>& b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | b[at + i];
  return v;
}
void put(std::vector<uint8_t>& b, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i, v >>= 8) b[at + i] = uint8_t(v);
}
std::vector<uint8_t> file_bytes(BlockDevice& file) {
  return read_all(file, 0, file.info().size);
}
// Recomputes the CRC-32C at bytes 4-7 of a structure.
void seal(std::vector<uint8_t>& b) {
  put(b, 4, 0, 4);
  put(b, 4, vhdx_crc32c(b.data(), b.size()), 4);
}

// The current header's offset (the one with the higher sequence number).
uint64_t current_header(BlockDevice& file) {
  auto h1 = read_all(file, 64 * 1024, 4096), h2 = read_all(file, 128 * 1024, 4096);
  return le(h2, 8, 8) > le(h1, 8, 8) ? 128 * 1024 : 64 * 1024;
}

// The first BAT entry of an image qcowkit made (BAT at log end: 2 MiB).
uint64_t bat_entry(BlockDevice& file, uint64_t index) {
  return le(read_all(file, 2 * MiB + index * 8, 8), 0, 8);
}

}  // namespace

TEST_CASE("a dynamic vhdx allocates blocks on write and reads them back", "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhdx(file, {.size = 5 * MiB + 512, .block_size = 1 << 20});
  REQUIRE_OK(image);
  const auto a = pattern_bytes(5000, 1), b = pattern_bytes(1500, 2);
  REQUIRE_OK((*image)->write(4 * MiB + 100, a));
  REQUIRE_OK((*image)->write(5 * MiB - 1000, b));  // straddles blocks 4 and 5
  REQUIRE_OK((*image)->close());

  auto format = detect_format(*file);
  REQUIRE_OK(format);
  CHECK(*format == "vhdx");
  auto details = probe_vhdx(*file);
  REQUIRE_OK(details);
  CHECK(details->virtual_size == 5 * MiB + 512);
  CHECK(details->block_size == MiB);
  CHECK_FALSE(details->fixed);
  CHECK_FALSE(details->log_dirty);

  auto again = open_vhdx(file, true);
  REQUIRE_OK(again);
  CHECK(read_all(**again, 4 * MiB + 100, a.size()) == a);
  CHECK(read_all(**again, 5 * MiB - 1000, b.size()) == b);
  CHECK(read_all(**again, 0, 4096) == std::vector<uint8_t>(4096, 0));
  auto extents = (*again)->extents(0, 5 * MiB + 512);
  REQUIRE_OK(extents);
  // Blocks 0-3 were never written: ZERO blocks, skipped by conversions.
  CHECK(extents->front() == Extent{0, 4 * MiB, ExtentKind::zero});
}

TEST_CASE("a fixed vhdx has every block in place", "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhdx(file, {.size = 3 * MiB, .fixed = true, .block_size = 1 << 20});
  REQUIRE_OK(image);
  const uint64_t size = file->info().size;
  const auto a = pattern_bytes(8192, 3);
  REQUIRE_OK((*image)->write(2 * MiB + 4096, a));
  REQUIRE_OK((*image)->close());
  CHECK(file->info().size == size);  // nothing appended
  auto details = probe_vhdx(*file);
  REQUIRE_OK(details);
  CHECK(details->fixed);
  auto again = open_vhdx(file, true);
  REQUIRE_OK(again);
  CHECK(read_all(**again, 2 * MiB + 4096, a.size()) == a);
}

TEST_CASE("a vhdx BAT entry reaches the file only after the block's data, on flush",
          "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhdx(file, {.size = 4 * MiB, .block_size = 1 << 20, .block_state_zero = false});
  REQUIRE_OK(image);
  const auto a = pattern_bytes(4096, 4);
  REQUIRE_OK((*image)->write(MiB, a));
  CHECK(bat_entry(*file, 1) == 0);  // not yet: only the data and the file's growth
  CHECK(read_all(**image, MiB, a.size()) == a);
  REQUIRE_OK((*image)->flush());
  CHECK((bat_entry(*file, 1) & 7) == 6);  // fully present
  REQUIRE_OK((*image)->close());
}

TEST_CASE("parallel writers into a dynamic vhdx all land", "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhdx(file, {.size = 16 * MiB, .block_size = 1 << 20});
  REQUIRE_OK(image);
  BlockDevice& dev = **image;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&dev, t] {
      for (uint64_t i = t; i < 64; i += 4) {
        const auto data = pattern_bytes(64 * 1024, i);
        (void)dev.write(i * 256 * 1024, data);  // four writes per 1 MiB block, racing to allocate it
      }
    });
  for (auto& th : threads) th.join();
  REQUIRE_OK(dev.close());
  auto again = open_vhdx(file, true);
  REQUIRE_OK(again);
  for (uint64_t i = 0; i < 64; ++i) CHECK(read_all(**again, i * 256 * 1024, 64 * 1024) == pattern_bytes(64 * 1024, i));
  // Each block allocated once: 16 blocks after the 4 MiB of metadata.
  CHECK(file->info().size == 4 * MiB + 16 * MiB);
}

TEST_CASE("a vhdx with 4096-byte logical sectors reads and writes", "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhdx(file, {.size = 8 * MiB, .block_size = 1 << 20});
  REQUIRE_OK(image);
  REQUIRE_OK((*image)->close());
  // Metadata at 3 MiB; items from +64 KiB: file parameters (8), size (8),
  // page 83 (16), logical sector size (4). Items carry no checksum.
  auto item = read_all(*file, 3 * MiB + 64 * 1024 + 32, 4);
  REQUIRE(le(item, 0, 4) == 512);
  item = {0, 0x10, 0, 0};
  REQUIRE_OK(file->write(3 * MiB + 64 * 1024 + 32, item));
  auto details = probe_vhdx(*file);
  REQUIRE_OK(details);
  CHECK(details->logical_sector_size == 4096);
  auto rw = open_vhdx(file, false);
  REQUIRE_OK(rw);
  const auto a = pattern_bytes(4096, 5);
  REQUIRE_OK((*rw)->write(7 * MiB, a));
  REQUIRE_OK((*rw)->close());
  auto again = open_vhdx(file, true);
  REQUIRE_OK(again);
  CHECK(read_all(**again, 7 * MiB, a.size()) == a);
}

namespace {

// A vhdx with block 0 written with `old`, and a log entry (not yet named by
// the header) that rewrites its sector at 4 KiB with `fresh` and zeroes
// the one at 8 KiB. Returns the entry's log GUID bytes.
std::vector<uint8_t> image_with_log_entry(std::shared_ptr<MemoryDevice> file,
                                          const std::vector<uint8_t>& old,
                                          const std::vector<uint8_t>& fresh, uint32_t entry_length) {
  auto image = create_vhdx(file, {.size = 4 * MiB, .block_size = 1 << 20});
  REQUIRE_OK(image);
  REQUIRE_OK((*image)->write(0, old));
  REQUIRE_OK((*image)->close());
  const uint64_t host = bat_entry(*file, 0) & ~uint64_t{(1 << 20) - 1};
  REQUIRE(host >= 4 * MiB);

  const uint64_t seq = 0x100000007;
  std::vector<uint8_t> guid = pattern_bytes(16, 9);
  std::vector<uint8_t> e(8192, 0);
  std::memcpy(e.data(), "loge", 4);
  put(e, 8, entry_length, 4);
  put(e, 12, 0, 4);  // tail: this entry
  put(e, 16, seq, 8);
  put(e, 24, 2, 4);
  std::memcpy(&e[32], guid.data(), 16);
  put(e, 48, file->info().size, 8);
  put(e, 56, file->info().size, 8);
  // A data descriptor: the sector's first 8 and last 4 bytes live here.
  std::memcpy(&e[64], "desc", 4);
  std::memcpy(&e[68], &fresh[4092], 4);
  std::memcpy(&e[72], &fresh[0], 8);
  put(e, 80, host + 4096, 8);
  put(e, 88, seq, 8);
  std::memcpy(&e[96], "zero", 4);
  put(e, 104, 4096, 8);
  put(e, 112, host + 8192, 8);
  put(e, 120, seq, 8);
  std::memcpy(&e[4096], "data", 4);
  put(e, 4100, seq >> 32, 4);
  std::memcpy(&e[4104], &fresh[8], 4084);
  put(e, 8188, seq & 0xffffffff, 4);
  seal(e);
  REQUIRE_OK(file->write(MiB, e));  // the log: 1 MiB at 1 MiB
  return guid;
}

void name_log(MemoryDevice& file, const std::vector<uint8_t>& guid) {
  const uint64_t at = current_header(file);
  auto h = read_all(file, at, 4096);
  std::memcpy(&h[48], guid.data(), 16);
  seal(h);
  REQUIRE_OK(file.write(at, h));
}

}  // namespace

TEST_CASE("a vhdx log entry is replayed in memory on a read-only open, into the file on a "
          "writable one",
          "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  const auto old = pattern_bytes(16384, 10), fresh = pattern_bytes(4096, 11);
  name_log(*file, image_with_log_entry(file, old, fresh, 8192));
  auto details = probe_vhdx(*file);
  REQUIRE_OK(details);
  CHECK(details->log_dirty);

  std::vector<uint8_t> want = old;
  std::memcpy(&want[4096], fresh.data(), 4096);
  std::fill(want.begin() + 8192, want.begin() + 12288, 0);

  const auto before = file_bytes(*file);
  {
    auto ro = open_vhdx(file, true);
    REQUIRE_OK(ro);
    CHECK(read_all(**ro, 0, want.size()) == want);
    REQUIRE_OK((*ro)->close());
  }
  CHECK(file_bytes(*file) == before);  // read-only: the file is untouched

  {
    auto rw = open_vhdx(file, false);
    REQUIRE_OK(rw);
    CHECK(read_all(**rw, 0, want.size()) == want);
    REQUIRE_OK((*rw)->close());
  }
  auto after = probe_vhdx(*file);
  REQUIRE_OK(after);
  CHECK_FALSE(after->log_dirty);  // the log GUID is cleared in the headers
  const auto h = read_all(*file, current_header(*file), 4096);
  CHECK(std::all_of(h.begin() + 48, h.begin() + 64, [](uint8_t x) { return x == 0; }));
  auto clean = open_vhdx(file, true);
  REQUIRE_OK(clean);
  CHECK(read_all(**clean, 0, want.size()) == want);  // now from the file itself
}

TEST_CASE("a torn vhdx log entry (bad checksum) is not replayed", "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  const auto old = pattern_bytes(16384, 12), fresh = pattern_bytes(4096, 13);
  const auto guid = image_with_log_entry(file, old, fresh, 8192);
  std::vector<uint8_t> one = {0x5a};
  REQUIRE_OK(file->write(MiB + 5000, one));  // inside the entry's data sector
  name_log(*file, guid);
  auto ro = open_vhdx(file, true);
  REQUIRE_OK(ro);
  CHECK(read_all(**ro, 0, old.size()) == old);
}

TEST_CASE("a vhdx log entry longer than the log is refused with a message", "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  const auto old = pattern_bytes(16384, 14), fresh = pattern_bytes(4096, 15);
  name_log(*file, image_with_log_entry(file, old, fresh, 2 * MiB));
  auto ro = open_vhdx(file, true);
  REQUIRE_FALSE(ro.ok());
  INFO(ro.error().message);
  CHECK(ro.error().message.find("log entry at log offset 0") != std::string::npos);
  CHECK(ro.error().message.find("inside the 1048576-byte log") != std::string::npos);
}

TEST_CASE("vhdx creation options are checked", "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  CHECK_FALSE(create_vhdx(file, {.size = MiB, .block_size = 3 << 20}).ok());
  CHECK_FALSE(create_vhdx(file, {.size = 65ull << 40}).ok());
  CHECK(vhdx_default_block_size(10 * MiB) == 8 * MiB);
  CHECK(vhdx_default_block_size(2ull << 30) == 16 * MiB);
  CHECK(vhdx_default_block_size(200ull << 30) == 32 * MiB);
}

TEST_CASE("a partially present vhdx block reads its present sectors, zeroes elsewhere",
          "[formats][vhdx]") {
  // 4097 blocks of 1 MiB: chunk ratio 4096, so BAT entry 4096 is the first
  // sector bitmap entry and block 4096 has entry 4097.
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhdx(file, {.size = (4ull << 30) + MiB, .block_size = 1 << 20});
  REQUIRE_OK(image);
  const auto a = pattern_bytes(16384, 20);
  REQUIRE_OK((*image)->write(0, a));
  REQUIRE_OK((*image)->close());
  REQUIRE((bat_entry(*file, 0) & ~uint64_t{7}) == 4 * MiB);
  // A sector bitmap after the block: sectors 0-7 and 16 present.
  REQUIRE_OK(file->resize(6 * MiB));
  std::vector<uint8_t> bits = {0xff, 0x00, 0x01};
  REQUIRE_OK(file->write(5 * MiB, bits));
  std::vector<uint8_t> entry(8);
  put(entry, 0, 4 * MiB | 7, 8);  // partially present
  REQUIRE_OK(file->write(2 * MiB, entry));
  put(entry, 0, 5 * MiB | 6, 8);  // sector bitmap present
  REQUIRE_OK(file->write(2 * MiB + 4096 * 8, entry));

  auto ro = open_vhdx(file, true);
  REQUIRE_OK(ro);
  std::vector<uint8_t> want(a.size(), 0);
  std::copy(a.begin(), a.begin() + 4096, want.begin());
  std::copy(a.begin() + 8192, a.begin() + 8704, want.begin() + 8192);
  CHECK(read_all(**ro, 0, want.size()) == want);
  // Unaligned reads across present and absent sectors.
  CHECK(read_all(**ro, 4000, 300) == std::vector<uint8_t>(want.begin() + 4000, want.begin() + 4300));
  const auto before = file_bytes(*file);
  auto rw = open_vhdx(file, false);
  REQUIRE_FALSE(rw.ok());
  CHECK(rw.error().code == ENOTSUP);
  CHECK(file_bytes(*file) == before);  // a refused open writes nothing
}

TEST_CASE("a vhdx log whose every sector claims a whole-log entry is refused, not read "
          "hundreds of times",
          "[formats][vhdx]") {
  auto file = std::make_shared<MemoryDevice>(0);
  const auto old = pattern_bytes(16384, 16), fresh = pattern_bytes(4096, 17);
  const auto guid = image_with_log_entry(file, old, fresh, 8192);
  std::vector<uint8_t> h(64, 0);
  std::memcpy(h.data(), "loge", 4);
  put(h, 8, MiB, 4);  // the whole log
  std::memcpy(&h[32], guid.data(), 16);
  for (uint64_t pos = 0; pos < MiB; pos += 4096) REQUIRE_OK(file->write(MiB + pos, h));
  name_log(*file, guid);
  auto ro = open_vhdx(file, true);
  REQUIRE_FALSE(ro.ok());
  INFO(ro.error().message);
  CHECK(ro.error().message.find("entries overlap") != std::string::npos);
}
