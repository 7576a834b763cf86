// VHD (vpc): geometry as qemu-img computes it, round trips through the
// block map, and refusals of broken footers.
#include <cstring>

#include "qcowkit/image_opener.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/vhd.hpp"
#include "test_support.hpp"

using namespace qcowkit;

namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 13);
  return v;
}

}  // namespace

TEST_CASE("vhd sizes round up to a CHS geometry as qemu-img does", "[formats][vhd]") {
  // Values qemu-img 7.2 gives (qemu-img create -f vpc IMG SIZE; qemu-img info).
  struct Case { uint64_t asked, size; uint16_t c; uint8_t h, s; };
  const Case cases[] = {
      {10u << 20, 10514432, 302, 4, 17},
      {1u << 20, 1079296, 31, 4, 17},
      {1000000, 1009664, 29, 4, 17},
      {uint64_t{1} << 30, 1073995776, 2081, 16, 63},
  };
  for (const Case& c : cases) {
    auto g = vhd_size_for(c.asked, false);
    REQUIRE_OK(g);
    CHECK(g->size == c.size);
    CHECK(g->cylinders == c.c);
    CHECK(g->heads == c.h);
    CHECK(g->sectors == c.s);
  }
  auto exact = vhd_size_for(3u << 20, true);
  REQUIRE_OK(exact);
  CHECK(exact->size == (3u << 20));
  CHECK(!vhd_size_for(uint64_t{2041} << 30, false).ok());
}

TEST_CASE("a dynamic vhd keeps holes and reads back what was written", "[formats][vhd]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhd(file, {.size = 8u << 20});
  REQUIRE_OK(image);
  BlockDevice& dev = **image;
  const uint64_t size = dev.info().size;
  REQUIRE(size >= (8u << 20));
  const auto data = pattern(5000, 7);
  const uint64_t at = (2u << 20) - 1000;  // straddles blocks 0 and 1
  REQUIRE_OK(dev.write(at, data));
  REQUIRE_OK(dev.write(6u << 20, std::vector<uint8_t>(4096, 0)));  // zeroes allocate nothing
  REQUIRE_OK(dev.close());

  REQUIRE(looks_like_vhd(*file));
  auto again = open_vhd(file, true);
  REQUIRE_OK(again);
  std::vector<uint8_t> back(data.size());
  REQUIRE_OK((*again)->read(at, back));
  CHECK(back == data);
  auto extents = (*again)->extents(0, size);
  REQUIRE_OK(extents);
  REQUIRE(extents->size() == 2);
  CHECK((*extents)[0] == Extent{0, 4u << 20, ExtentKind::data});
  CHECK((*extents)[1].kind == ExtentKind::hole);
  auto details = probe_vhd(*file);
  REQUIRE_OK(details);
  CHECK(!details->fixed);
  CHECK(details->block_size == (2u << 20));
}

TEST_CASE("a fixed vhd is the disk then a footer, found by format name only", "[formats][vhd]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vhd(file, {.size = 1u << 20, .fixed = true});
  REQUIRE_OK(image);
  const auto data = pattern(4096, 3);
  REQUIRE_OK((*image)->write(4096, data));
  REQUIRE_OK((*image)->close());
  CHECK(file->info().size == 1079296 + 512);
  // Like qemu-img, a fixed image is not guessed from content.
  auto format = detect_format(*file);
  REQUIRE_OK(format);
  CHECK(*format == "raw");
  auto again = open_vhd(file, true);
  REQUIRE_OK(again);
  std::vector<uint8_t> back(data.size());
  REQUIRE_OK((*again)->read(4096, back));
  CHECK(back == data);
}

TEST_CASE("a vhd footer with a bad checksum is refused, naming the checksum", "[formats][vhd]") {
  auto file = std::make_shared<MemoryDevice>(0);
  REQUIRE_OK(create_vhd(file, {.size = 1u << 20}));
  uint8_t byte;
  REQUIRE_OK(file->read(40, ByteSpan(&byte, 1)));  // the original size
  byte ^= 1;
  REQUIRE_OK(file->write(40, ConstByteSpan(&byte, 1)));
  auto image = open_vhd(file, true);
  REQUIRE(!image.ok());
  CHECK(image.error().message.find("bad checksum") != std::string::npos);
}
