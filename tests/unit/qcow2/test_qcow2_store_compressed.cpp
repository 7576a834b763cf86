// Qcow2Image::store_compressed: clusters compressed by the caller (on its own
// threads) are stored as write_compressed would store them.
#include <memory>

#include "qcowkit/codec.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

std::vector<uint8_t> compressible(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i / 64 + seed) % 7 + 'a');
  return v;
}

}  // namespace

TEST_CASE("store_compressed keeps caller-compressed clusters readable", "[qcow2][compress]") {
  for (CompressionType type : {CompressionType::deflate, CompressionType::zstd}) {
    const Codec* codec = builtin_codecs().get(type);
    REQUIRE(codec);
    const uint32_t cluster = 65536;
    const uint64_t size = 4 * uint64_t{cluster} + 4096;  // a short last cluster
    Qcow2CreateOptions options;
    options.size = size;
    options.compression_type = type;
    auto created = Qcow2Image::create(std::make_shared<MemoryDevice>(0), options);
    REQUIRE_OK(created);
    auto& image = **created;

    auto first = compressible(cluster, 1);
    auto packed = codec->compress(first, cluster - 1);
    REQUIRE_OK(packed);
    REQUIRE_FALSE(packed->empty());
    REQUIRE_OK(image.store_compressed(cluster, *packed));

    auto last = compressible(4096, 2);  // compressed zero-padded to a whole cluster
    std::vector<uint8_t> padded(cluster, 0);
    std::copy(last.begin(), last.end(), padded.begin());
    auto packed_last = codec->compress(padded, cluster - 1);
    REQUIRE_OK(packed_last);
    REQUIRE_OK(image.store_compressed(4 * uint64_t{cluster}, *packed_last));

    CHECK(read_all(image, cluster, cluster) == first);
    CHECK(read_all(image, 4 * uint64_t{cluster}, 4096) == last);
    auto map = image.map(0, size);
    REQUIRE_OK(map);
    bool saw_compressed = false;
    for (const auto& e : *map)
      if (e.compressed && e.offset == cluster) saw_compressed = true;
    CHECK(saw_compressed);
    auto report = image.check();
    REQUIRE_OK(report);
    CHECK(report->compressed_clusters == 2);
    CHECK(report->corruptions == 0);
    CHECK(report->leaks == 0);
  }
}

TEST_CASE("store_compressed refuses bad offsets and sizes", "[qcow2][compress]") {
  Qcow2CreateOptions options;
  options.size = 1u << 20;
  options.cluster_size = 4096;
  auto created = Qcow2Image::create(std::make_shared<MemoryDevice>(0), options);
  REQUIRE_OK(created);
  auto& image = **created;
  std::vector<uint8_t> some(100, 1), too_big(4096, 1);
  CHECK(image.store_compressed(512, some).error().code == EINVAL);       // not aligned
  CHECK(image.store_compressed(1u << 20, some).error().code == EINVAL);  // past the end
  CHECK(image.store_compressed(0, {}).error().code == EINVAL);           // empty
  CHECK(image.store_compressed(0, too_big).error().code == EINVAL);      // not smaller
}
