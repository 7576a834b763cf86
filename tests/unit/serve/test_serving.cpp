// The serving layer (serve/): NBD request semantics over a qcow2 image, the
// options the plugin and the qcow2 filter share, and the fixed-capacity
// device the filter keeps an image file in.
#include <memory>

#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "serve/exported_image.hpp"
#include "serve/fixed_capacity_device.hpp"
#include "serve/serve_options.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::serve;
using namespace qcowkit::test;

namespace {

std::shared_ptr<Qcow2Image> new_image(std::shared_ptr<BlockDevice> file, uint64_t size = 8u << 20) {
  Qcow2CreateOptions co;
  co.size = size;
  auto image = Qcow2Image::create(std::move(file), co);
  REQUIRE_OK(image);
  return std::shared_ptr<Qcow2Image>(std::move(image).value());
}

Result<uint64_t> plain_size(const std::string& v) { return std::stoull(v); }
Result<bool> plain_bool(const std::string& v) { return v == "true"; }
const ValueParsers parsers{plain_size, plain_bool};

}  // namespace

TEST_CASE("serving: trim frees clusters, or only zeroes them with trim=zero") {
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = new_image(file);
  auto data = pattern_bytes(65536, 3);
  REQUIRE_OK(image->write(0, data));
  SECTION("deallocate") {
    ExportedImage exported(image, TrimMode::deallocate, true);
    REQUIRE_OK(exported.trim(0, 65536, false));
    auto e = image->extents(0, 65536);
    REQUIRE_OK(e);
    REQUIRE((*e)[0].kind != ExtentKind::data);
  }
  SECTION("zero keeps reading zeroes, with fua") {
    ExportedImage exported(image, TrimMode::zero, true);
    REQUIRE_OK(exported.trim(0, 65536, true));
    REQUIRE(is_all_zero(read_all(*image, 0, 65536)));
  }
  SECTION("off is not offered") {
    REQUIRE_FALSE(ExportedImage(image, TrimMode::off, true).can_trim());
    REQUIRE(ExportedImage(image, TrimMode::zero, true).can_trim());
  }
}

TEST_CASE("serving: a fast zero that would write data is refused untouched") {
  auto image = new_image(std::make_shared<MemoryDevice>(0));
  ExportedImage exported(image, TrimMode::deallocate, true);
  auto data = pattern_bytes(4096, 4);
  REQUIRE_OK(image->write(65536, data));
  ZeroFlags fast;
  fast.fast_only = true;
  // Part of an allocated cluster: zeroing it means writing data.
  Status st = exported.zero(65536, 512, fast);
  REQUIRE_FALSE(st.ok());
  REQUIRE(ExportedImage::is_fast_zero_refusal(fast, st.error()));
  REQUIRE(read_all(*image, 65536, 4096) == data);
  // A whole unallocated cluster zeroes by metadata.
  REQUIRE_OK(exported.zero(1 << 20, 65536, fast));
}

TEST_CASE("serving: extents stop after one with first_only, and cover the request otherwise") {
  auto image = new_image(std::make_shared<MemoryDevice>(0));
  ExportedImage exported(image, TrimMode::deallocate, true);
  REQUIRE_OK(image->write(1 << 20, pattern_bytes(65536, 5)));
  std::vector<Extent> seen;
  auto add = [&](const Extent& e) -> Status {
    seen.push_back(e);
    return {};
  };
  REQUIRE_OK(exported.extents(0, 8u << 20, true, add));
  REQUIRE(seen.size() == 1);
  seen.clear();
  REQUIRE_OK(exported.extents(0, 8u << 20, false, add));
  REQUIRE(seen.size() == 3);
  REQUIRE(seen[1] == Extent{1 << 20, 65536, ExtentKind::data});
  REQUIRE(seen.back().offset + seen.back().length == 8u << 20);
}

TEST_CASE("serving: block sizes are the sector and the cluster, writes only when writable") {
  auto image = new_image(std::make_shared<MemoryDevice>(0));
  const BlockSizes b = ExportedImage(image, TrimMode::deallocate, true).block_sizes();
  REQUIRE(b.minimum >= 1);
  REQUIRE(b.preferred == 65536);
  REQUIRE(ExportedImage(image, TrimMode::deallocate, true).can_write());
  REQUIRE_FALSE(ExportedImage(image, TrimMode::deallocate, false).can_write());
}

TEST_CASE("serving: options are parsed with or without a prefix, and others left alone") {
  ServeOptions o;
  auto r = apply_serve_option(o, "trim", "qcow2-trim", "zero", parsers);
  REQUIRE_OK(r);
  REQUIRE(*r);
  REQUIRE(o.trim == TrimMode::zero);
  r = apply_serve_option(o, "metadata-cache", "metadata-cache", "1024", parsers);
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.error().message.find("metadata-cache=1024") != std::string::npos);
  r = apply_serve_option(o, "backing", "backing", "true", parsers);
  REQUIRE_OK(r);
  REQUIRE_FALSE(*r);
  const std::string help = serve_options_help("qcow2-");
  for (const char* key : {"qcow2-metadata-cache=", "qcow2-trim=", "qcow2-snapshot="})
    REQUIRE(help.find(key) != std::string::npos);
  REQUIRE(serve_options_help("").find("\nmetadata-cache=") == std::string::npos);
}

TEST_CASE("serving: a fixed-capacity device holds a file that grows into zeroed room") {
  auto below = std::make_shared<MemoryDevice>(4u << 20);
  const auto written = pattern_bytes(200000, 6);
  REQUIRE_OK(below->write(0, written));
  auto dev = FixedCapacityDevice::open(below);
  REQUIRE_OK(dev);
  // Until told where the file ends, it is the whole device.
  REQUIRE((*dev)->info().size == (4u << 20));
  (*dev)->set_file_end(65536);
  REQUIRE((*dev)->info().size == 65536);
  SECTION("growth reads as zeroes: old data is zeroed, the zero tail is not written") {
    REQUIRE_OK((*dev)->resize(1u << 20));
    REQUIRE(is_all_zero(read_all(**dev, 65536, (1u << 20) - 65536)));
    REQUIRE(read_all(*below, 0, 65536) == std::vector<uint8_t>(written.begin(), written.begin() + 65536));
    REQUIRE(below->allocated_bytes() <= 4 * MemoryDevice::kChunkSize);
  }
  SECTION("a shrink then a growth zeroes what the file held") {
    REQUIRE_OK((*dev)->resize(1u << 20));
    REQUIRE_OK((*dev)->write(512 << 10, pattern_bytes(4096, 9)));
    REQUIRE_OK((*dev)->resize(256 << 10));
    REQUIRE_OK((*dev)->resize(1u << 20));
    REQUIRE(is_all_zero(read_all(**dev, 512 << 10, 4096)));
  }
  SECTION("growing past the device is ENOSPC, and requests past the end are ERANGE") {
    Status st = (*dev)->resize((4u << 20) + 1);
    REQUIRE(st.error().code == ENOSPC);
    std::vector<uint8_t> buf(512);
    REQUIRE((*dev)->read(65536, buf).error().code == ERANGE);
  }
}

TEST_CASE("serving: a qcow2 image grows inside a fixed-capacity device, then fills it") {
  auto below = std::make_shared<MemoryDevice>(2u << 20);
  auto dev = FixedCapacityDevice::open(below);
  REQUIRE_OK(dev);
  auto empty = device_is_all_zero(*below);
  REQUIRE_OK(empty);
  REQUIRE(*empty);
  (*dev)->set_file_end(0);
  auto image = new_image(*dev, 8u << 20);
  auto data = pattern_bytes(65536, 7);
  Status st;
  uint64_t written = 0;
  for (; written < (8u << 20) && st.ok(); written += 65536) st = image->write(written, data);
  REQUIRE_FALSE(st.ok());
  REQUIRE(st.error().code == ENOSPC);
  REQUIRE(written > (1u << 20));  // most of the 2 MiB held data before it filled
  REQUIRE(read_all(*image, 0, 65536) == data);
  auto report = image->check();
  REQUIRE_OK(report);
  REQUIRE(report->corruptions == 0);
}

TEST_CASE("serving: device_is_all_zero reads data extents") {
  auto below = std::make_shared<MemoryDevice>(1u << 20);
  REQUIRE_OK(below->write(4096, std::vector<uint8_t>(4096, 0)));
  auto zero = device_is_all_zero(*below);
  REQUIRE_OK(zero);
  REQUIRE(*zero);
  REQUIRE_OK(below->write(900000, std::vector<uint8_t>(1, 1)));
  zero = device_is_all_zero(*below);
  REQUIRE_OK(zero);
  REQUIRE_FALSE(*zero);
}
