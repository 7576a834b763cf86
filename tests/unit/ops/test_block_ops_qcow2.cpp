// Block operations over qcow2 images: the layers stack, so copy, compare and
// the folds work on a Qcow2Image like on any device, and sparse_copy keeps
// a qcow2 destination's unallocated clusters unallocated.
#include <algorithm>
#include <memory>

#include "qcowkit/block_ops.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr uint64_t MiB = 1 << 20;

// Where a device's bytes first differ from `expected`, or -1 (Catch2 would
// print megabytes for a failed vector comparison).
int64_t first_difference(BlockDevice& device, const std::vector<uint8_t>& expected) {
  const auto got = read_all(device, 0, expected.size());
  const auto at = std::mismatch(got.begin(), got.end(), expected.begin()).first;
  return at == got.end() ? -1 : static_cast<int64_t>(at - got.begin());
}

// The same between two devices of one size, read 8 MiB at a time.
int64_t first_difference(BlockDevice& a, BlockDevice& b) {
  const uint64_t size = a.info().size, step = 8 * MiB;
  REQUIRE(b.info().size == size);
  for (uint64_t at = 0; at < size; at += step) {
    const size_t n = static_cast<size_t>(std::min(step, size - at));
    const auto x = read_all(a, at, n), y = read_all(b, at, n);
    const auto d = std::mismatch(x.begin(), x.end(), y.begin()).first;
    if (d != x.end()) return static_cast<int64_t>(at + (d - x.begin()));
  }
  return -1;
}

std::unique_ptr<Qcow2Image> new_image(std::shared_ptr<MemoryDevice> file, uint64_t size,
                                      CompressionType compression = CompressionType::deflate) {
  Qcow2CreateOptions create;
  create.size = size;
  create.compression_type = compression;
  auto image = Qcow2Image::create(std::move(file), create);
  REQUIRE_OK(image);
  return std::move(image).value();
}

}  // namespace

TEST_CASE("qcow2: sparse_copy into an image allocates only the data", "[ops][qcow2]") {
  MemoryDevice src(256 * MiB);
  REQUIRE_OK(src.write(3 * MiB, pattern_bytes(200000, 1)));
  REQUIRE_OK(src.write(200 * MiB, pattern_bytes(65536, 2)));
  auto file = std::make_shared<MemoryDevice>(0);  // the image grows it as needed
  auto image = new_image(file, 256 * MiB);
  CopyOptions options;
  options.parallelism = 4;
  REQUIRE_OK(sparse_copy(src, *image, options));
  auto r = compare(src, *image);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
  // Byte for byte against the source (a plain memory device holding what
  // was written), not only compare()'s word.
  REQUIRE(first_difference(src, *image) == -1);
  // The data (about 270 KB) and metadata, not 256 MiB of zeroes.
  REQUIRE(file->allocated_bytes() < 4 * MiB);
  uint64_t mapped = 0;
  REQUIRE_OK(fold_mapped(*image, MiB, [&](uint64_t, ConstByteSpan data) {
    mapped += data.size();
    return Status{};
  }));
  REQUIRE(mapped >= 200000 + 65536);
  REQUIRE(mapped <= 2 * MiB);
  auto report = image->check();
  REQUIRE_OK(report);
  REQUIRE(report->corruptions == 0);
  REQUIRE(report->leaks == 0);
}

TEST_CASE("qcow2: compressed clusters read back through the native codecs", "[ops][qcow2]") {
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    auto image = new_image(std::make_shared<MemoryDevice>(0), 8 * MiB, type);
    const uint32_t cluster = image->cluster_size();
    // Compressible clusters: a short pattern repeated.
    std::vector<uint8_t> data(cluster);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>("qcowkit!"[i % 8]);
    for (uint64_t at : {uint64_t{0}, uint64_t{5} * cluster, 8 * MiB - cluster})
      REQUIRE_OK(image->write_compressed(at, data));
    auto map = image->map(0, 8 * MiB);
    REQUIRE_OK(map);
    bool compressed = false;
    for (const MapEntry& e : *map) compressed = compressed || e.compressed;
    REQUIRE(compressed);

    // The reference is built from the bytes written, not from the image.
    std::vector<uint8_t> expected(8 * MiB, 0);
    for (uint64_t at : {uint64_t{0}, uint64_t{5} * cluster, 8 * MiB - cluster})
      std::copy(data.begin(), data.end(), expected.begin() + at);
    REQUIRE(first_difference(*image, expected) == -1);
    MemoryDevice raw(8 * MiB);
    REQUIRE_OK(sparse_copy(*image, raw));
    REQUIRE(first_difference(raw, expected) == -1);
    auto r = compare(*image, raw);
    REQUIRE_OK(r);
    REQUIRE(r->equal);
  }
}

TEST_CASE("qcow2: image to image, holes stay holes and zeroes stay zeroes", "[ops][qcow2]") {
  auto a = new_image(std::make_shared<MemoryDevice>(0), 32 * MiB);
  REQUIRE_OK(fill_random(*a, 3));
  REQUIRE_OK(a->write_zeroes(4 * MiB, 8 * MiB));        // zero clusters
  REQUIRE_OK(a->discard(20 * MiB, 12 * MiB));           // unallocated again
  // An independent reference: the same steps on a plain memory device
  // (fill_random gives the same bytes for the same seed on any device).
  MemoryDevice reference(32 * MiB);
  REQUIRE_OK(fill_random(reference, 3));
  REQUIRE_OK(reference.write_zeroes(4 * MiB, 8 * MiB));
  REQUIRE_OK(reference.write_zeroes(20 * MiB, 12 * MiB));
  const auto expected = read_all(reference, 0, 32 * MiB);
  REQUIRE(std::count(expected.begin(), expected.end(), 0) < static_cast<long>(expected.size()));
  REQUIRE(first_difference(*a, expected) == -1);
  auto b_file = std::make_shared<MemoryDevice>(0);
  auto b = new_image(b_file, 32 * MiB);
  REQUIRE_OK(sparse_copy(*a, *b));
  REQUIRE(first_difference(*b, expected) == -1);
  auto r = compare(*a, *b);
  REQUIRE_OK(r);
  REQUIRE(r->equal);
  uint64_t unmapped = 0;
  REQUIRE_OK(fold_unmapped(*b, [&](uint64_t, uint64_t length) {
    unmapped += length;
    return Status{};
  }));
  REQUIRE(unmapped >= 20 * MiB);
  auto report = b->check();
  REQUIRE_OK(report);
  REQUIRE(report->corruptions == 0);
}
