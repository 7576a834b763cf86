// The qcow2 engine's operations: partial writes, zeroes, discard, extents,
// compressed clusters, backing files, resize.
#include <cstring>
#include <random>

#include "heap_counter.hpp"
#include "qcow2/format.hpp"
#include "qcow2/refcount_entry.hpp"
#include "qcow2_test_images.hpp"
#include "qcowkit/testing/recording_device.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

void require_clean(Qcow2Image& image) {
  auto report = image.check();
  REQUIRE_OK(report);
  INFO((report->messages.empty() ? std::string() : report->messages.front()));
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
}

// 512-byte clusters with 64-bit refcounts: a refcount block counts only 64
// clusters (32 KiB), and one refcount table cluster names 64 blocks.
std::shared_ptr<MemoryDevice> make_small_cluster_image(uint64_t size) {
  Qcow2CreateOptions o;
  o.size = size;
  o.cluster_size = 512;
  o.refcount_bits = 64;
  return make_image(o);
}

// Checks `image`, requiring the heap to grow by less than `limit` meanwhile.
CheckReport check_within_heap(Qcow2Image& image, uint64_t limit) {
  reset_heap_peak();
  const uint64_t heap_before = heap_bytes_in_use();
  auto report = image.check();
  REQUIRE_OK(report);
  CHECK(heap_peak_bytes() - heap_before < limit);
  return std::move(*report);
}

// Repairs everything, then requires `image` and the image reopened from
// `dev` to check clean and read `expected` from offset 0.
void repair_and_require_clean(std::unique_ptr<Qcow2Image> image, std::shared_ptr<BlockDevice> dev,
                              const std::vector<uint8_t>& expected) {
  auto repaired = image->check(RepairMode::all);
  REQUIRE_OK(repaired);
  INFO((repaired->messages.empty() ? std::string() : repaired->messages.front()));
  CHECK(repaired->corruptions == 0);
  CHECK(repaired->leaks == 0);
  CHECK(read_all(*image, 0, expected.size()) == expected);
  require_clean(*image);
  REQUIRE_OK(image->close());
  auto reopened = open_ok(std::move(dev));
  require_clean(*reopened);
  CHECK(read_all(*reopened, 0, expected.size()) == expected);
}

std::vector<Extent> all_extents(BlockDevice& dev) {
  std::vector<Extent> out;
  REQUIRE_OK(for_each_extent(dev, 0, dev.info().size, [&](const Extent& e) {
    out.push_back(e);
    return Status{};
  }));
  return out;
}

}  // namespace

TEST_CASE("refcount entries of every width read back what was set", "[qcow2][refcount]") {
  for (unsigned bits : {1u, 2u, 4u, 8u, 16u, 32u, 64u}) {
    std::vector<uint8_t> block(512, 0);
    const uint64_t entries = 512 * 8 / bits;
    const uint64_t max = qcow2::max_refcount(bits);
    for (uint64_t i = 0; i < entries; ++i) qcow2::set_refcount_entry(block.data(), i, bits, (i * 2654435761u) & max);
    for (uint64_t i = 0; i < entries; ++i) {
      INFO("bits " << bits << " entry " << i);
      REQUIRE(qcow2::get_refcount_entry(block.data(), i, bits) == ((i * 2654435761u) & max));
    }
  }
  // Narrow entries: entry 0 is the least significant bits of byte 0.
  std::vector<uint8_t> b(1, 0);
  qcow2::set_refcount_entry(b.data(), 0, 1, 1);
  CHECK(b[0] == 0x01);
  qcow2::set_refcount_entry(b.data(), 1, 4, 0xf);
  CHECK(b[0] == 0xf1);
}

TEST_CASE("partial-cluster writes keep the rest of the cluster", "[qcow2][io]") {
  for (uint32_t cs : {512u, 4096u, 65536u}) {
    auto image = open_ok(make_image(4u << 20, cs));
    auto a = pattern_bytes(cs * 3, 1);
    REQUIRE_OK(image->write(cs, a));
    auto b = pattern_bytes(700, 2);
    REQUIRE_OK(image->write(cs + 100, b));
    std::memcpy(a.data() + 100, b.data(), b.size());
    CHECK(read_all(*image, cs, a.size()) == a);
    CHECK(is_all_zero(read_all(*image, 0, cs)));
    require_clean(*image);
  }
}

// The image over a device that notes the longest write it is sent.
struct WriteSizes {
  std::shared_ptr<testing::RecordingDevice> device;
  std::shared_ptr<uint64_t> longest = std::make_shared<uint64_t>(0);
  WriteSizes() {
    auto mem = make_image(4u << 20);
    std::vector<uint8_t> bytes(mem->info().size);
    REQUIRE_OK(mem->read(0, bytes));
    device = std::make_shared<testing::RecordingDevice>(bytes);
    device->set_hook([longest = longest](const testing::DeviceEvent& e) {
      if (e.phase == testing::DeviceEvent::Phase::before && e.op == testing::DeviceOp::write)
        *longest = std::max(*longest, e.length);
    });
  }
};

TEST_CASE("a small write into a new cluster past the file's end writes its bytes, not the cluster",
          "[qcow2][io]") {
  WriteSizes dev;
  auto image = open_ok(dev.device);
  auto small = pattern_bytes(1024, 3);
  REQUIRE_OK(image->write(65536 + 3072, small));
  CHECK(*dev.longest == small.size());
  std::vector<uint8_t> expected(65536, 0);
  std::memcpy(expected.data() + 3072, small.data(), small.size());
  CHECK(read_all(*image, 65536, 65536) == expected);
  REQUIRE_OK(image->close());
  auto reopened = open_ok(std::make_shared<testing::RecordingDevice>(dev.device->durable_bytes()));
  CHECK(read_all(*reopened, 65536, 65536) == expected);
  require_clean(*reopened);
}

TEST_CASE("a small write into a freed cluster inside the file writes the whole cluster", "[qcow2][io]") {
  WriteSizes dev;
  auto image = open_ok(dev.device);
  // Cluster A (guest 0) is freed, cluster B (guest 2) keeps the file's end past it.
  REQUIRE_OK(image->write(0, pattern_bytes(65536, 4)));
  REQUIRE_OK(image->write(2 * 65536, pattern_bytes(65536, 5)));
  REQUIRE_OK(image->discard(0, 65536));
  REQUIRE_OK(image->flush());
  const uint64_t file_end = dev.device->info().size;
  *dev.longest = 0;
  auto small = pattern_bytes(1000, 6);
  REQUIRE_OK(image->write(5 * 65536 + 1000, small));  // reuses A: its old bytes must not show
  CHECK(dev.device->info().size == file_end);
  CHECK(*dev.longest == 65536);
  std::vector<uint8_t> expected(65536, 0);
  std::memcpy(expected.data() + 1000, small.data(), small.size());
  CHECK(read_all(*image, 5 * 65536, 65536) == expected);
  require_clean(*image);
}

TEST_CASE("zeroes and discards: extents, metadata-only zeroing, fast-zero refusals", "[qcow2][zero]") {
  auto image = open_ok(make_image(1u << 20, 4096));
  auto data = pattern_bytes(1u << 20, 3);
  REQUIRE_OK(image->write(0, data));
  REQUIRE_OK(image->write_zeroes(8192, 8192));                    // zero flag, clusters kept
  REQUIRE_OK(image->write_zeroes(65536, 8192, {.may_trim = true}));  // deallocated
  REQUIRE_OK(image->discard(131072, 4096));
  REQUIRE_OK(image->discard(200000, 100));                        // partial: zeroed
  std::memset(data.data() + 8192, 0, 8192);
  std::memset(data.data() + 65536, 0, 8192);
  std::memset(data.data() + 131072, 0, 4096);
  std::memset(data.data() + 200000, 0, 100);
  CHECK(read_all(*image, 0, data.size()) == data);
  auto extents = all_extents(*image);
  auto kind_at = [&](uint64_t offset) {
    for (const Extent& e : extents)
      if (offset >= e.offset && offset < e.offset + e.length) return e.kind;
    FAIL("no extent at " << offset);
    return ExtentKind::data;
  };
  CHECK(kind_at(0) == ExtentKind::data);
  CHECK(kind_at(8192) == ExtentKind::zero);
  CHECK(kind_at(65536) == ExtentKind::hole);
  CHECK(kind_at(131072) == ExtentKind::hole);
  CHECK(kind_at(200000) == ExtentKind::data);

  CHECK(image->can_zero_fast(4096, 8192));
  CHECK_FALSE(image->can_zero_fast(100, 8192));
  CHECK(image->write_zeroes(100, 4096, {.fast_only = true}).error().code == ENOTSUP);
  REQUIRE_OK(image->write_zeroes(4096, 4096, {.fast_only = true}));
  REQUIRE_OK(image->flush());
  require_clean(*image);
}

TEST_CASE("compressed clusters: written, read back, overwritten", "[qcow2][compressed]") {
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    Qcow2CreateOptions o;
    o.size = 1u << 20;
    o.cluster_size = 4096;
    o.compression_type = type;
    auto image = open_ok(make_image(o));
    std::vector<uint8_t> text(4096);
    for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<uint8_t>("qcowkit "[i % 8]);
    for (uint64_t c = 0; c < 16; ++c) REQUIRE_OK(image->write_compressed(c * 4096, text));
    std::vector<uint8_t> noise(4096);
    std::mt19937_64 rng(4);
    for (auto& b : noise) b = static_cast<uint8_t>(rng());
    REQUIRE_OK(image->write_compressed(16 * 4096, noise));  // incompressible: stored plainly
    auto map = image->map(0, 17 * 4096);
    REQUIRE_OK(map);
    CHECK(map->front().compressed);
    CHECK_FALSE(map->back().compressed);
    for (uint64_t c = 0; c < 16; ++c) CHECK(read_all(*image, c * 4096, 4096) == text);
    CHECK(read_all(*image, 16 * 4096, 4096) == noise);
    auto patch = pattern_bytes(10, 5);
    REQUIRE_OK(image->write(3 * 4096 + 7, patch));  // copy-on-write out of the compressed cluster
    std::vector<uint8_t> expect = text;
    std::memcpy(expect.data() + 7, patch.data(), patch.size());
    CHECK(read_all(*image, 3 * 4096, 4096) == expect);
    REQUIRE_OK(image->discard(0, 4096));
    REQUIRE_OK(image->flush());
    auto report = image->check();
    REQUIRE_OK(report);
    CHECK(report->compressed_clusters == 14);
    CHECK(report->leaks == 0);
    CHECK(report->corruptions == 0);
  }
}

TEST_CASE("a backing device supplies unallocated ranges and copy-on-write", "[qcow2][backing]") {
  auto base = std::make_shared<MemoryDevice>(1u << 20);
  auto base_data = pattern_bytes(1u << 20, 6);
  REQUIRE_OK(base->write(0, base_data));
  Qcow2OpenOptions options;
  options.backing = base;
  auto created = Qcow2Image::create(std::make_shared<MemoryDevice>(0),
                                    Qcow2CreateOptions{.size = 1u << 20, .cluster_size = 4096,
                                                       .backing_file = "base.raw", .backing_format = "raw"},
                                    options);
  REQUIRE_OK(created);
  auto& image = **created;
  CHECK(image.details().backing_file == "base.raw");
  CHECK(read_all(image, 0, 1u << 20) == base_data);
  auto patch = pattern_bytes(100, 7);
  REQUIRE_OK(image.write(5000, patch));  // the rest of cluster 1 comes from the base
  std::memcpy(base_data.data() + 5000, patch.data(), patch.size());
  CHECK(read_all(image, 0, 1u << 20) == base_data);
  REQUIRE_OK(image.write_zeroes(8192, 4096));  // v3: a zero cluster hides the base
  CHECK(is_all_zero(read_all(image, 8192, 4096)));
  auto extents = image.extents(0, 16384);
  REQUIRE_OK(extents);
  CHECK((*extents)[0].kind == ExtentKind::data);  // the base's data shows through
  require_clean(image);
}

TEST_CASE("resize grows (moving the L1 table) and shrinks only when asked", "[qcow2][resize]") {
  auto dev = make_image(64u << 10, 512);  // one L2 table covers 32 KiB: the L1 table is tiny
  auto image = open_ok(dev);
  auto data = pattern_bytes(64u << 10, 8);
  REQUIRE_OK(image->write(0, data));
  const uint64_t old_l1 = peek64(*dev, qcow2::kOffL1Offset);
  REQUIRE_OK(image->resize(64u << 20));  // 2048 L1 entries: a new, larger table
  CHECK(image->info().size == (64u << 20));
  CHECK(peek64(*dev, qcow2::kOffL1Offset) != old_l1);
  CHECK(read_all(*image, 0, data.size()) == data);
  auto tail = pattern_bytes(4096, 9);
  REQUIRE_OK(image->write((64u << 20) - 4096, tail));
  require_clean(*image);

  CHECK(image->resize(1u << 20).error().code == EINVAL);  // shrinking needs asking
  CHECK(image->resize(1000).error().code == EINVAL);      // not a multiple of 512
  REQUIRE_OK(image->resize(32u << 10, true));
  CHECK(image->info().size == (32u << 10));
  REQUIRE_OK(image->resize(1u << 20));
  CHECK(read_all(*image, 0, 32u << 10) == std::vector<uint8_t>(data.begin(), data.begin() + (32u << 10)));
  CHECK(is_all_zero(read_all(*image, 32u << 10, (1u << 20) - (32u << 10))));
  REQUIRE_OK(image->flush());
  require_clean(*image);

  image.reset();
  auto reopened = open_ok(dev);
  CHECK(reopened->info().size == (1u << 20));
  CHECK(read_all(*reopened, 0, 32u << 10) == std::vector<uint8_t>(data.begin(), data.begin() + (32u << 10)));
}

TEST_CASE("an empty image has no L1 table and grows from nothing without a leak", "[qcow2][resize]") {
  auto dev = make_image(0, 65536);
  CHECK(peek64(*dev, qcow2::kOffL1Offset) == 0);  // as QEMU: nothing to reference
  auto image = open_ok(dev);
  require_clean(*image);
  REQUIRE_OK(image->resize(1u << 30));
  auto data = pattern_bytes(65536, 3);
  REQUIRE_OK(image->write(500u << 20, data));
  REQUIRE_OK(image->flush());
  require_clean(*image);
  CHECK(read_all(*image, 500u << 20, data.size()) == data);
}

TEST_CASE("the refcount table grows when the file outgrows it", "[qcow2][refcount]") {
  // One refcount table cluster names 64 blocks, 2 MiB of clusters.
  auto dev = make_small_cluster_image(8u << 20);
  auto image = open_ok(dev);
  const uint64_t old_table = peek64(*dev, qcow2::kOffRefcountTableOffset);
  auto data = pattern_bytes(6u << 20, 10);
  REQUIRE_OK(image->write(0, data));
  REQUIRE_OK(image->flush());
  CHECK(peek64(*dev, qcow2::kOffRefcountTableOffset) != old_table);
  CHECK(read_all(*image, 0, data.size()) == data);
  require_clean(*image);
}

TEST_CASE("check and repair cost what the image references, not the length of its file", "[qcow2][refcount]") {
  // A hostile image whose file is 8 TiB long (sparse) and whose first L2
  // entry points 7 TiB in, where no refcount block counts it. Checking it
  // must not size anything by the file's 134 million clusters, and
  // repairing it must not write a refcount block for every 2 GiB of file.
  auto dev = make_image(64u << 20);  // 64 KiB clusters, 16-bit refcounts
  {
    auto image = open_ok(dev);
    REQUIRE_OK(image->write(0, pattern_bytes(1u << 20, 21)));
    REQUIRE_OK(image->close());
  }
  const uint64_t cs = 65536;
  const uint64_t real_end = dev->info().size;
  REQUIRE_OK(dev->resize(uint64_t{8} << 40));
  {
    auto image = open_ok(dev);
    const CheckReport report = check_within_heap(*image, 8u << 20);
    CHECK(report.corruptions == 0);
    CHECK(report.leaks == 0);
    CHECK(report.image_end_offset == real_end);
  }

  const uint64_t far = uint64_t{7} << 40;
  const uint64_t l2 = peek64(*dev, peek64(*dev, qcow2::kOffL1Offset)) & qcow2::kOffsetMask;
  poke64(*dev, l2, far | qcow2::kCopied);
  auto image = open_ok(dev);
  const CheckReport report = check_within_heap(*image, 8u << 20);
  CHECK(report.corruptions >= 1);  // refcount 0, one reference
  CHECK(report.leaks == 1);        // the cluster guest 0 used to point at
  CHECK(report.image_end_offset == far + cs);

  const uint64_t stored_before = dev->allocated_bytes();
  auto expected = pattern_bytes(1u << 20, 21);
  std::fill(expected.begin(), expected.begin() + cs, 0);  // guest cluster 0 now reads the far cluster
  repair_and_require_clean(std::move(image), dev, expected);
  // Two refcount blocks and a table cluster, not one block per 2 GiB.
  CHECK(dev->allocated_bytes() - stored_before <= 4 * MemoryDevice::kChunkSize);
}

TEST_CASE("repair rebuilds refcounts when a block counts fewer clusters than a page of references", "[qcow2][refcount]") {
  // One refcount block counts 64 clusters, far fewer than the reference
  // counter's 4096-cluster pages, so the rebuild picks blocks out of the
  // middle of a page.
  auto dev = make_small_cluster_image(4u << 20);
  auto image = open_ok(dev);
  auto data = pattern_bytes(1u << 20, 31);
  REQUIRE_OK(image->write(0, data));
  REQUIRE_OK(image->discard(256u << 10, 256u << 10));  // a gap of unreferenced clusters
  std::fill(data.begin() + (256u << 10), data.begin() + (512u << 10), 0);
  REQUIRE_OK(image->close());
  image.reset();
  // Zero the refcount of the header cluster: a refcount below its
  // references, which only a rebuild repairs.
  const uint64_t table = peek64(*dev, qcow2::kOffRefcountTableOffset);
  poke64(*dev, peek64(*dev, table), 0);
  image = open_ok(dev);
  auto damaged = image->check();
  REQUIRE_OK(damaged);
  CHECK(damaged->corruptions > 0);
  repair_and_require_clean(std::move(image), dev, data);
}

TEST_CASE("a 1 TiB image works through a small metadata cache", "[qcow2][cache]") {
  Qcow2CreateOptions o;
  o.size = uint64_t{1} << 40;
  auto dev = make_image(o);
  Qcow2OpenOptions options;
  options.metadata_cache_bytes = 4 * 65536;  // far fewer tables than the writes touch
  auto opened = Qcow2Image::open(dev, options);
  REQUIRE_OK(opened);
  auto& image = **opened;
  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < 64; ++i) offsets.push_back((i * 16411 % 1024) * (uint64_t{1} << 30) + i * 512);
  for (uint64_t i = 0; i < offsets.size(); ++i) REQUIRE_OK(image.write(offsets[i], pattern_bytes(512, i)));
  for (uint64_t i = 0; i < offsets.size(); ++i) CHECK(read_all(image, offsets[i], 512) == pattern_bytes(512, i));
  REQUIRE_OK(image.flush());
  require_clean(image);
  CHECK(dev->info().size < (80u << 20));  // metadata for what was written, not for 1 TiB
}

TEST_CASE("compact moves clusters into holes and truncates the file", "[qcow2][compact]") {
  auto dev = make_image(16u << 20, 4096);
  auto image = open_ok(dev);
  auto data = pattern_bytes(8u << 20, 11);
  REQUIRE_OK(image->write(0, data));
  // Free most of the front of the file, keep data scattered near the end.
  REQUIRE_OK(image->discard(0, 6u << 20));
  std::memset(data.data(), 0, 6u << 20);
  auto late = pattern_bytes(1u << 20, 12);
  REQUIRE_OK(image->write(12u << 20, late));  // reuses freed clusters
  REQUIRE_OK(image->flush());
  const uint64_t before = dev->info().size;
  REQUIRE_OK(image->compact());
  const uint64_t after = dev->info().size;
  CHECK(after < before - (4u << 20));
  CHECK(read_all(*image, 0, data.size()) == data);
  CHECK(read_all(*image, 12u << 20, late.size()) == late);
  require_clean(*image);
  image.reset();
  auto reopened = open_ok(dev);
  CHECK(read_all(*reopened, 0, data.size()) == data);
  require_clean(*reopened);
}
