// Regressions found by the fuzzers and the reliability suite, as plain tests
// (their inputs are also replayed from fuzz/regressions/).
#include <fstream>
#include <iterator>

#include "reliability_support.hpp"

using namespace qcowkit;
using namespace qcowkit::reliability;

namespace {

std::shared_ptr<MemoryDevice> load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto dev = std::make_shared<MemoryDevice>(bytes.size());
  REQUIRE_OK(dev->write(0, bytes));
  return dev;
}

}  // namespace

// fuzz_open: writes to a qemu-made image with extended L2 entries succeeded
// but read back as zeroes (new L2 entries got an empty subcluster bitmap).
// The image must either refuse to open read-write, or keep what is written.
TEST_CASE("regression: writes to an extended-L2 image are kept or refused", "[reliability][regression]") {
  auto dev = load(QCOWKIT_SOURCE_DIR "/fuzz/regressions/open/extended-l2-write-lost.qcow2");
  auto image = Qcow2Image::open(dev, {});
  if (!image.ok()) {
    INFO(image.error().message);
    REQUIRE(image.error().code == ENOTSUP);
    Qcow2OpenOptions read_only;
    read_only.read_only = true;
    REQUIRE_OK(Qcow2Image::open(dev, read_only));
    return;
  }
  std::vector<uint8_t> data(4096, 0xab);
  REQUIRE_OK((*image)->write(0, data));
  std::vector<uint8_t> back(4096);
  REQUIRE_OK((*image)->read(0, back));
  REQUIRE(back == data);
}
