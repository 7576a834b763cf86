// Bitmap operations on the engine: what each does to the directory, what
// bad input is refused with, and that a refusal leaves the file unchanged.
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
