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

// fuzz_codec: overwriting a whole compressed cluster whose descriptor points
// far past the end of the file queued a refcount drop for that far cluster;
// the flush then tried to grow the refcount table out to it (a 1 GiB
// allocation before the size limit was checked). It must be a corruption.
TEST_CASE("regression: freeing a compressed cluster past the end is a corruption, not a huge table",
          "[reliability][regression]") {
  auto dev = std::make_shared<MemoryDevice>(0);
  Qcow2CreateOptions create;
  create.size = 64u << 10;
  create.cluster_size = 512;
  {
    auto image = Qcow2Image::create(dev, create);
    REQUIRE_OK(image);
    std::vector<uint8_t> data(512, 0x11);
    REQUIRE_OK((*image)->write(0, data));
    REQUIRE_OK((*image)->close());
  }
  auto be64 = [&](uint64_t offset) {
    uint8_t b[8];
    REQUIRE_OK(dev->read(offset, ByteSpan(b, 8)));
    uint64_t v = 0;
    for (uint8_t x : b) v = (v << 8) | x;
    return v;
  };
  const uint64_t l2 = be64(be64(40)) & 0x00fffffffffffe00ULL;
  const uint64_t descriptor = (uint64_t{1} << 62) | (uint64_t{1} << 59);  // byte offset 2^59
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(descriptor >> (56 - 8 * i));
  REQUIRE_OK(dev->write(l2, ConstByteSpan(b, 8)));

  auto image = Qcow2Image::open(dev, {});
  REQUIRE_OK(image);
  std::vector<uint8_t> data(512, 0x22);
  REQUIRE_OK((*image)->write(0, data));  // a whole cluster: nothing to decompress
  Status flushed = (*image)->flush();
  REQUIRE_FALSE(flushed.ok());
  INFO(flushed.error().message);
  REQUIRE((*image)->is_corrupt());
  REQUIRE(dev->info().size < (1u << 20));  // no table grown out towards 2^59
}
