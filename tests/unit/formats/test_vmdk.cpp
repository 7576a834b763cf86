// VMDK: monolithicSparse and streamOptimized round trips, and the
// streaming writer's in-order contract.
#include "qcowkit/image_opener.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/vmdk.hpp"
#include "test_support.hpp"

using namespace qcowkit;

TEST_CASE("a monolithicSparse vmdk allocates grains and reads them back", "[formats][vmdk]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vmdk(file, {.size = 3u << 20});
  REQUIRE_OK(image);
  std::vector<uint8_t> data(70000, 0x5c);
  REQUIRE_OK((*image)->write(65000, data));  // three grains
  REQUIRE_OK((*image)->close());
  auto format = detect_format(*file);
  REQUIRE_OK(format);
  CHECK(*format == "vmdk");
  auto again = open_vmdk(file, true);
  REQUIRE_OK(again);
  std::vector<uint8_t> back(data.size());
  REQUIRE_OK((*again)->read(65000, back));
  CHECK(back == data);
  auto extents = (*again)->extents(0, 3u << 20);
  REQUIRE_OK(extents);
  CHECK(extents->front() == Extent{0, 3 * 65536, ExtentKind::data});
  CHECK(extents->back().kind == ExtentKind::hole);
}

TEST_CASE("a streamOptimized vmdk compresses grains written in order", "[formats][vmdk]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vmdk(file, {.size = 1u << 20, .stream_optimized = true});
  REQUIRE_OK(image);
  std::vector<uint8_t> a(1000, 0xa1), b(70000, 0xb2);
  REQUIRE_OK((*image)->write(0, a));
  REQUIRE_OK((*image)->write(5000, b));
  // Back into a grain already stored: refused, not silently lost.
  auto late = (*image)->write(0, a);
  REQUIRE(!late.ok());
  CHECK(late.error().message.find("written in order") != std::string::npos);
  REQUIRE_OK((*image)->close());
  auto details = probe_vmdk(*file);
  REQUIRE_OK(details);
  CHECK(details->compressed);
  CHECK(details->create_type == "streamOptimized");
  auto again = open_vmdk(file, true);
  REQUIRE_OK(again);
  std::vector<uint8_t> back(1000);
  REQUIRE_OK((*again)->read(0, back));
  CHECK(back == a);
  std::vector<uint8_t> back_b(b.size());
  REQUIRE_OK((*again)->read(5000, back_b));
  CHECK(back_b == b);
  CHECK(!open_vmdk(file, false).ok());  // compressed images are read-only
}
