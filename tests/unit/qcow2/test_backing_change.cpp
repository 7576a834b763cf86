// set_backing_file (qcowkit rebase): the header names the new file and
// format after one rewrite, other extensions survive, bad names are
// refused with the file unchanged.
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

}  // namespace

TEST_CASE("set_backing_file rewrites the backing name and format", "[qcow2][rebase]") {
  for (int version : {2, 3}) {
    INFO("version " << version);
    auto dev = std::make_shared<MemoryDevice>(0);
    Qcow2CreateOptions c;
    c.size = 4u << 20;
    c.version = version;
    c.cluster_size = 4096;
    c.backing_file = "old.qcow2";
    c.backing_format = "qcow2";
    auto image = Qcow2Image::create(dev, c);
    REQUIRE_OK(image);
    if (version == 3) REQUIRE_OK((*image)->add_bitmap("keep"));
    auto data = pattern_bytes(4096, 1);
    REQUIRE_OK((*image)->write(8192, data));

    REQUIRE_OK((*image)->set_backing_file(std::string(1023, 'n'), "raw", nullptr));
    auto d = (*image)->details();
    CHECK(d.backing_file == std::string(1023, 'n'));
    CHECK(d.backing_format == "raw");
    REQUIRE_OK((*image)->set_backing_file("", "raw", nullptr));  // standalone: no format either
    d = (*image)->details();
    CHECK(d.backing_file.empty());
    CHECK(d.backing_format.empty());
    REQUIRE_OK((*image)->set_backing_file("new.img", "raw", nullptr));
    REQUIRE_OK((*image)->close());

    auto probed = Qcow2Image::probe(*dev);
    REQUIRE_OK(probed);
    CHECK(probed->backing_file == "new.img");
    CHECK(probed->backing_format == "raw");
    if (version == 3) {
      REQUIRE(probed->bitmaps.size() == 1);
      CHECK(probed->bitmaps[0].name == "keep");
      CHECK(probed->bitmaps_consistent);
    }
    auto again = Qcow2Image::open(dev, {});
    REQUIRE_OK(again);
    CHECK(read_all(**again, 8192, 4096) == data);
    auto report = (*again)->check();
    REQUIRE_OK(report);
    CHECK(report->corruptions == 0);
    CHECK(report->leaks == 0);

    const auto before = bytes_of(*dev);
    auto st = (*again)->set_backing_file(std::string(1024, 'x'), "raw", nullptr);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == EINVAL);
    CHECK(bytes_of(*dev) == before);
  }
}

TEST_CASE("a backing name that does not fit in the first cluster is refused", "[qcow2][rebase]") {
  auto dev = std::make_shared<MemoryDevice>(0);
  Qcow2CreateOptions c;
  c.size = 1u << 20;
  c.cluster_size = 512;
  auto image = Qcow2Image::create(dev, c);
  REQUIRE_OK(image);
  REQUIRE_OK((*image)->flush());
  const auto before = bytes_of(*dev);
  auto st = (*image)->set_backing_file(std::string(600, 'b'), "qcow2", nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ENOSPC);
  CHECK(bytes_of(*dev) == before);
}
