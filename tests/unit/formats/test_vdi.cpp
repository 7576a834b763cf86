// VDI: round trips of dynamic and static images, and what the opener sees.
#include <algorithm>

#include "qcowkit/image_opener.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/vdi.hpp"
#include "test_support.hpp"

using namespace qcowkit;

TEST_CASE("a dynamic vdi allocates blocks in write order and reads them back", "[formats][vdi]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vdi(file, {.size = 5u << 20});
  REQUIRE_OK(image);
  std::vector<uint8_t> a(3000, 0xaa), b(3000, 0xbb);
  REQUIRE_OK((*image)->write(4u << 20, a));  // block 4 first: data block 0
  REQUIRE_OK((*image)->write(100, b));       // block 0: data block 1
  REQUIRE_OK((*image)->close());
  CHECK(file->info().size == 1024 + (2u << 20));

  auto format = detect_format(*file);
  REQUIRE_OK(format);
  CHECK(*format == "vdi");
  auto details = probe_vdi(*file);
  REQUIRE_OK(details);
  CHECK(details->blocks == 5);
  CHECK(details->blocks_allocated == 2);
  auto again = open_vdi(file, true);
  REQUIRE_OK(again);
  std::vector<uint8_t> back(3000);
  REQUIRE_OK((*again)->read(4u << 20, back));
  CHECK(back == a);
  REQUIRE_OK((*again)->read(100, back));
  CHECK(back == b);
  auto extents = (*again)->extents(0, 5u << 20);
  REQUIRE_OK(extents);
  // Block 0 is data where written (the rest of it is a hole in the file,
  // which reads as zeroes the image knows of); blocks 1 to 3 are holes.
  CHECK(extents->front().kind == ExtentKind::data);
  CHECK(std::find(extents->begin(), extents->end(), Extent{1u << 20, 3u << 20, ExtentKind::hole}) !=
        extents->end());
}

TEST_CASE("a static vdi has every block in place and reads as zeroes", "[formats][vdi]") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create_vdi(file, {.size = 3u << 20, .static_image = true});
  REQUIRE_OK(image);
  CHECK(file->info().size == 1024 + (3u << 20));
  std::vector<uint8_t> back(4096, 1);
  REQUIRE_OK((*image)->read(2u << 20, back));
  CHECK(is_all_zero(back));
  auto details = probe_vdi(*file);
  REQUIRE_OK(details);
  CHECK(details->static_image);
  CHECK(details->blocks_allocated == 3);
}

TEST_CASE("a vdi block map entry past the end of the file is refused", "[formats][vdi]") {
  auto file = std::make_shared<MemoryDevice>(0);
  REQUIRE_OK(create_vdi(file, {.size = 2u << 20}));
  const uint8_t entry[4] = {1, 0, 0, 0};  // block 0 -> data block 1, not in the file
  REQUIRE_OK(file->write(512, entry));
  auto image = open_vdi(file, true);
  REQUIRE(!image.ok());
  CHECK(image.error().message.find("past the end of the file") != std::string::npos);
}
