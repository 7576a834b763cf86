// The format table: detection by content, qemu-img's names, options
// checked before anything is created.
#include "qcowkit/formats.hpp"
#include "qcowkit/image_opener.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;

TEST_CASE("every format is found by content under qemu-img's name", "[formats]") {
  for (const char* name : {"vpc", "vdi", "vmdk", "vhdx"}) {
    const ImageFormat* format = find_image_format(name);
    REQUIRE(format != nullptr);
    auto file = std::make_shared<MemoryDevice>(0);
    auto image = format->create(file, 1u << 20, {}, "x");
    REQUIRE_OK(image);
    REQUIRE_OK((*image)->close());
    auto detected = detect_format(*file);
    REQUIRE_OK(detected);
    CHECK(*detected == name);
    auto facts = format->probe(*file);
    REQUIRE_OK(facts);
    CHECK(facts->virtual_size >= (1u << 20));
  }
}

TEST_CASE("qcow version 1 and qcow2 share a magic but not a name", "[formats]") {
  auto file = std::make_shared<MemoryDevice>(4096);
  const uint8_t header[8] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 1};
  REQUIRE_OK(file->write(0, header));
  auto detected = detect_format(*file);
  REQUIRE_OK(detected);
  CHECK(*detected == "qcow");
  auto qcow2 = std::make_shared<MemoryDevice>(0);
  Qcow2CreateOptions options;
  options.size = 1u << 20;
  REQUIRE_OK(Qcow2Image::create(qcow2, options));
  detected = detect_format(*qcow2);
  REQUIRE_OK(detected);
  CHECK(*detected == "qcow2");
}

TEST_CASE("bad creation options are refused naming the key", "[formats]") {
  auto check = [](const char* format, FormatOptions options, const char* words) {
    Status st = find_image_format(format)->check_options(options);
    REQUIRE(!st.ok());
    CHECK(st.error().message.find(words) != std::string::npos);
  };
  check("vpc", {{"subformat", "sparse"}}, "subformat");
  check("vpc", {{"cluster_size", "64k"}}, "cluster_size");
  check("vdi", {{"static", "maybe"}}, "static");
  check("vmdk", {{"subformat", "twoGbMaxExtentFlat"}}, "subformat");
  check("vhdx", {{"subformat", "differencing"}}, "subformat");
  check("vhdx", {{"block_size", "3M"}}, "block_size");
  check("vhdx", {{"log_size", "1G"}}, "log_size");
  check("qcow", {}, "read-only");
}
