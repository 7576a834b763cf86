// FileOpenOptions::skip_sync: flush() stops waiting for the disk, and nothing
// else changes (what was written is what every reader sees).
#include "qcowkit/file_device.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

TEST_CASE("a skip_sync file device keeps every write visible", "[devices][file]") {
  TempDir dir;
  const std::string path = dir.file("scratch.img");
  FileOpenOptions options;
  options.create = true;
  options.skip_sync = true;
  auto dev = FileDevice::open(path, options);
  REQUIRE_OK(dev);
  REQUIRE_OK((*dev)->resize(1u << 20));
  auto data = pattern_bytes(65536, 11);
  REQUIRE_OK((*dev)->write(4096, data, WriteFlags{.fua = true}));
  REQUIRE_OK((*dev)->flush());
  REQUIRE_OK((*dev)->close());

  auto again = FileDevice::open(path, {.read_only = true});
  REQUIRE_OK(again);
  CHECK((*again)->info().size == (1u << 20));
  CHECK(read_all(**again, 4096, data.size()) == data);
  CHECK(is_all_zero(read_all(**again, 0, 4096)));
}
