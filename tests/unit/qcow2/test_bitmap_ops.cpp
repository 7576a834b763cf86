// Bitmap operations on the engine: what each does to the directory, what
// bad input is refused with, and that a refusal leaves the file unchanged.
#include <cstdio>

#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

std::vector<uint8_t> bytes_of(BlockDevice& dev) {
  std::vector<uint8_t> v(dev.info().size);
  REQUIRE_OK(dev.read(0, v));
  return v;
}

std::unique_ptr<Qcow2Image> make(const std::shared_ptr<MemoryDevice>& dev, int version = 3) {
  Qcow2CreateOptions c;
  c.size = 16u << 20;
  c.version = version;
  auto image = Qcow2Image::create(dev, c);
  REQUIRE_OK(image);
  return std::move(*image);
}

void require_clean(Qcow2Image& image) {
  auto report = image.check();
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
}

}  // namespace

TEST_CASE("bitmaps are added, listed, disabled, cleared, merged and removed", "[qcow2][bitmaps]") {
  auto dev = std::make_shared<MemoryDevice>(0);
  auto image = make(dev);
  REQUIRE_OK(image->add_bitmap("a"));
  REQUIRE_OK(image->add_bitmap("b", 1u << 20, false));
  auto d = image->details();
  REQUIRE(d.bitmaps.size() == 2);
  CHECK(d.bitmaps[0].granularity_bits == 16);  // 64 KiB clusters: 64 KiB
  CHECK(d.bitmaps[0].flags == 2);              // auto
  CHECK(d.bitmaps[1].granularity_bits == 20);
  CHECK(d.bitmaps[1].flags == 0);
  CHECK(d.bitmaps_consistent);
  require_clean(*image);

  auto data = pattern_bytes(4096, 1);
  REQUIRE_OK(image->write(3u << 20, data));
  REQUIRE_OK(image->close());
  image = std::move(*Qcow2Image::open(dev, {}));
  auto a = image->bitmap_ranges("a");
  REQUIRE_OK(a);
  REQUIRE(a->size() == 3);
  CHECK((*a)[1].offset == (3u << 20));
  CHECK((*a)[1].length == 65536);
  REQUIRE_OK(image->merge_bitmap("b", "a"));
  auto b = image->bitmap_ranges("b");
  REQUIRE_OK(b);
  REQUIRE(b->size() == 3);
  CHECK((*b)[1].offset == (3u << 20));
  CHECK((*b)[1].length == (1u << 20));
  REQUIRE_OK(image->clear_bitmap("a"));
  a = image->bitmap_ranges("a");
  REQUIRE_OK(a);
  CHECK(a->size() == 1);
  CHECK(a->front().kind == ExtentKind::hole);
  REQUIRE_OK(image->enable_bitmap("b", true));
  CHECK(image->details().bitmaps[1].flags == 2);
  require_clean(*image);
  REQUIRE_OK(image->remove_bitmap("a"));
  REQUIRE_OK(image->remove_bitmap("b"));
  d = image->details();
  CHECK(d.bitmaps.empty());
  CHECK_FALSE(d.bitmaps_consistent);
  require_clean(*image);
  REQUIRE_OK(image->close());
  auto again = Qcow2Image::open(dev, {});
  REQUIRE_OK(again);
  require_clean(**again);
}

TEST_CASE("bad bitmap requests are refused and change nothing", "[qcow2][bitmaps]") {
  auto dev = std::make_shared<MemoryDevice>(0);
  auto image = make(dev);
  REQUIRE_OK(image->add_bitmap("a"));
  REQUIRE_OK(image->flush());
  const auto before = bytes_of(*dev);
  auto refused = [&](Status st, int code) {
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == code);
    CHECK_FALSE(st.error().message.empty());
    CHECK(bytes_of(*dev) == before);
  };
  refused(image->add_bitmap("a"), EEXIST);
  refused(image->add_bitmap(""), EINVAL);
  refused(image->add_bitmap(std::string(1024, 'x')), EINVAL);
  refused(image->add_bitmap("g", 256), EINVAL);
  refused(image->add_bitmap("g", 3000), EINVAL);
  refused(image->add_bitmap("g", uint64_t{4} << 30), EINVAL);
  refused(image->remove_bitmap("nosuch"), ENOENT);
  refused(image->clear_bitmap("nosuch"), ENOENT);
  refused(image->enable_bitmap("nosuch", false), ENOENT);
  refused(image->merge_bitmap("a", "nosuch"), ENOENT);
  refused(image->merge_bitmap("nosuch", "a"), ENOENT);
  refused(image->merge_bitmap_ranges("a", {}, 1u << 20), EINVAL);
  REQUIRE_OK(image->add_bitmap(std::string(1023, 'x'), uint64_t{2} << 30));  // both limits are inclusive
  require_clean(*image);

  auto v2dev = std::make_shared<MemoryDevice>(0);
  auto v2 = make(v2dev, 2);
  REQUIRE_OK(v2->flush());
  const auto v2before = bytes_of(*v2dev);
  auto st = v2->add_bitmap("a");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ENOTSUP);
  CHECK(bytes_of(*v2dev) == v2before);
}

namespace {

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t(b[at]) << 24 | uint32_t(b[at + 1]) << 16 | uint32_t(b[at + 2]) << 8 | b[at + 3];
}
void put_be(std::vector<uint8_t>& b, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * (bytes - 1 - i)));
}

}  // namespace

TEST_CASE("a 65536th bitmap is refused and changes nothing", "[qcow2][bitmaps]") {
  // Adding 65535 bitmaps one by one rewrites the directory each time; the
  // test writes such a directory itself (every entry sharing one empty,
  // disabled table), which is enough for the engine to count them.
  auto dev = std::make_shared<MemoryDevice>(0);
  Qcow2CreateOptions c;
  c.size = 1u << 20;
  c.cluster_size = 4096;
  {
    auto image = Qcow2Image::create(dev, c);
    REQUIRE_OK(image);
    REQUIRE_OK((*image)->add_bitmap("first", 65536, false));
    REQUIRE_OK((*image)->close());
  }
  auto header = bytes_of(*dev);
  header.resize(4096);
  size_t ext = be32(header, 100);
  while (be32(header, ext) != 0x23852875) {
    REQUIRE(be32(header, ext) != 0);
    ext += 8 + ((be32(header, ext + 4) + 7) & ~7u);
  }
  uint64_t dir_offset = 0;
  for (int i = 0; i < 8; ++i) dir_offset = dir_offset << 8 | header[ext + 24 + i];
  std::vector<uint8_t> first(32);
  REQUIRE_OK(dev->read(dir_offset, first));  // table offset, size, flags, type, granularity

  constexpr uint32_t kCount = 65535;
  std::vector<uint8_t> directory(uint64_t{kCount} * 32, 0);
  for (uint32_t i = 0; i < kCount; ++i) {
    const size_t at = size_t{i} * 32;
    std::copy(first.begin(), first.begin() + 18, directory.begin() + at);
    char name[8];
    std::snprintf(name, sizeof name, "b%05u", i);
    put_be(directory, at + 18, 6, 2);
    put_be(directory, at + 20, 0, 4);
    std::copy(name, name + 6, directory.begin() + at + 24);
  }
  const uint64_t end = (dev->info().size + 4095) / 4096 * 4096;
  REQUIRE_OK(dev->resize(end + directory.size()));
  REQUIRE_OK(dev->write(end, directory));
  put_be(header, ext + 8, kCount, 4);
  put_be(header, ext + 16, directory.size(), 8);
  put_be(header, ext + 24, end, 8);
  REQUIRE_OK(dev->write(0, header));

  auto image = Qcow2Image::open(dev, {});
  REQUIRE_OK(image);
  REQUIRE((*image)->details().bitmaps.size() == kCount);
  const auto before = bytes_of(*dev);
  auto st = (*image)->add_bitmap("one-too-many");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == EFBIG);
  CHECK(st.error().message.find("65535") != std::string::npos);
  CHECK(bytes_of(*dev) == before);
}

TEST_CASE("a bitmap directory the first cluster cannot name is refused before anything is written",
          "[qcow2][bitmaps]") {
  auto dev = std::make_shared<MemoryDevice>(0);
  Qcow2CreateOptions c;
  c.size = 1u << 20;
  c.cluster_size = 512;
  c.backing_file = std::string(370, 'b');  // 112 + 8 + ... leaves less than 32 bytes
  c.backing_format = "qcow2";
  auto image = Qcow2Image::create(dev, c);
  REQUIRE_OK(image);
  REQUIRE_OK((*image)->flush());
  const auto before = bytes_of(*dev);
  auto st = (*image)->add_bitmap("b");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ENOSPC);
  CHECK(bytes_of(*dev) == before);
}
