// VMDK: monolithicSparse and streamOptimized round trips, the streaming
// writer's in-order contract, and streamOptimized written forward-only.
#include <algorithm>

#include "qcowkit/byte_sink.hpp"
#include "qcowkit/codec.hpp"
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

TEST_CASE("a streamOptimized vmdk streamed forward reads back, with grains packed elsewhere", "[formats][vmdk][stream]") {
  MemoryByteSink sink;
  auto image = create_vmdk_stream(sink, {.size = (1u << 20) + 4096, .stream_optimized = true});
  REQUIRE_OK(image);
  const size_t head = sink.bytes().size();
  CHECK(head > 0);  // the header and descriptor go out at once
  std::vector<uint8_t> a(1000, 0xa1), c(65536, 0xc3), last(4096, 0xd4);
  REQUIRE_OK((*image)->write(0, a));
  // Grain 2 compressed by the caller (a copy engine's prepare stage).
  auto packed = builtin_codecs().zlib_stream->compress(c, 2 * c.size());
  REQUIRE_OK(packed);
  REQUIRE_OK((*image)->store_compressed_grain(2 * 65536, *packed));
  CHECK(sink.bytes().size() > head);  // grain 0 and 2 are out: nothing is held back
  // Behind it: refused, whether written or packed.
  CHECK((*image)->write(2 * 65536 + 10, a).error().message.find("written in order") != std::string::npos);
  CHECK(!(*image)->store_compressed_grain(65536, *packed).ok());
  CHECK(!(*image)->store_compressed_grain(3 * 65536 + 512, *packed).ok());  // not grain aligned
  REQUIRE_OK((*image)->write(1u << 20, last));  // the short last grain
  const size_t before_close = sink.bytes().size();
  REQUIRE_OK((*image)->close());
  CHECK(sink.bytes().size() > before_close);  // tables, directory, footer
  auto file = std::make_shared<MemoryDevice>(sink.bytes().size());
  REQUIRE_OK(file->write(0, sink.bytes()));
  auto details = probe_vmdk(*file);
  REQUIRE_OK(details);
  CHECK(details->create_type == "streamOptimized");
  CHECK(details->virtual_size == (1u << 20) + 4096);
  auto again = open_vmdk(file, true);
  REQUIRE_OK(again);
  std::vector<uint8_t> whole((1u << 20) + 4096);
  REQUIRE_OK((*again)->read(0, whole));
  CHECK(std::equal(a.begin(), a.end(), whole.begin()));
  CHECK(std::equal(c.begin(), c.end(), whole.begin() + 2 * 65536));
  CHECK(std::equal(last.begin(), last.end(), whole.begin() + (1u << 20)));
  CHECK(std::all_of(whole.begin() + 65536, whole.begin() + 2 * 65536, [](uint8_t v) { return v == 0; }));
}
