// Qcow2StreamWriter: a qcow2 image written forward-only into memory opens
// with Qcow2Image, reads back as the source, and checks clean; zeroes are
// holes; a source that fails stops the stream with its error.
#include <atomic>
#include <cstring>
#include <memory>

#include "qcowkit/byte_sink.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "qcowkit/qcow2_stream.hpp"
#include "qcow2_test_images.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

// Data, a hole, a zero run inside data, compressible text, random bytes,
// and an end that is not a whole cluster (nor a whole sector).
std::shared_ptr<MemoryDevice> make_source(uint64_t size) {
  auto dev = std::make_shared<MemoryDevice>(size);
  auto random = pattern_bytes(300 * 1024, 7);
  REQUIRE_OK(dev->write(0, random));
  std::vector<uint8_t> text(700 * 1024);
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<uint8_t>("qcowkit streams "[i % 16]);
  REQUIRE_OK(dev->write(2 << 20, text));
  REQUIRE_OK(dev->write(size - 1000, ConstByteSpan(random.data(), 1000)));
  return dev;
}

// An append-only sink that also checks nothing is ever written twice.
struct CountingSink : ByteSink {
  MemoryByteSink inner;
  uint64_t calls = 0;
  Status write(ConstByteSpan bytes) override {
    ++calls;
    return inner.write(bytes);
  }
};

std::unique_ptr<Qcow2Image> reopen(const std::vector<uint8_t>& bytes) {
  auto file = std::make_shared<MemoryDevice>(bytes.size());
  REQUIRE_OK(file->write(0, bytes));
  return open_ok(file, true);
}

void require_same(BlockDevice& source, Qcow2Image& image) {
  const uint64_t size = source.info().size;
  REQUIRE(image.info().size == (size + 511) / 512 * 512);
  REQUIRE(read_all(image, 0, size) == read_all(source, 0, size));
  auto report = image.check();
  REQUIRE_OK(report);
  REQUIRE(report->corruptions == 0);
  REQUIRE(report->leaks == 0);
}

}  // namespace

TEST_CASE("qcow2 stream: uncompressed, every cluster size class", "[qcow2][stream]") {
  auto source = make_source((5 << 20) + 1234 + 512 - 1234 % 512 - 17);  // not a sector multiple
  for (uint32_t cluster : {512u, 4096u, 65536u, 2u << 20}) {
    for (int version : {2, 3}) {
      CAPTURE(cluster, version);
      CountingSink sink;
      Qcow2StreamOptions options;
      options.layout.cluster_size = cluster;
      options.layout.version = version;
      auto writer = Qcow2StreamWriter::create(*source, sink, options);
      REQUIRE_OK(writer);
      REQUIRE_OK((*writer)->run());
      REQUIRE((*writer)->bytes_written() == sink.inner.bytes().size());
      REQUIRE(sink.inner.bytes().size() % cluster == 0);
      auto image = reopen(sink.inner.bytes());
      require_same(*source, *image);
      // The hole is not allocated (a 2 MiB cluster holds data from 0 on).
      if (cluster <= 65536) {
        auto map = image->map(1 << 20, 512 * 1024);
        REQUIRE_OK(map);
        for (const MapEntry& e : *map) REQUIRE_FALSE(e.data);
      }
    }
  }
}

TEST_CASE("qcow2 stream: compressed zlib and zstd, stepped as the browser would", "[qcow2][stream]") {
  auto source = make_source(6 << 20);
  for (CompressionType type : {CompressionType::deflate, CompressionType::zstd}) {
    for (uint32_t cluster : {4096u, 65536u}) {
      CAPTURE(cluster, to_string(type));
      MemoryByteSink sink;
      Qcow2StreamOptions options;
      options.layout.cluster_size = cluster;
      options.layout.compression_type = type;
      options.compress = true;
      auto writer = Qcow2StreamWriter::create(*source, sink, options);
      REQUIRE_OK(writer);
      bool finished = false;
      int steps = 0;
      while (!finished) {
        auto p = (*writer)->step(1 << 20);
        REQUIRE_OK(p);
        REQUIRE(p->total == 2 * source->info().size);
        finished = p->finished;
        REQUIRE(++steps < 1000);
      }
      auto image = reopen(sink.bytes());
      REQUIRE(image->details().compression_type == type);
      require_same(*source, *image);
      auto map = image->map(2 << 20, 64 * 1024);
      REQUIRE_OK(map);
      REQUIRE((*map)[0].compressed);
      // Compression did shrink it: less than the 1 MiB of data stored plainly.
      REQUIRE(sink.bytes().size() < (1 << 20) + 64 * cluster);
    }
  }
}

TEST_CASE("qcow2 stream: narrow refcounts and an empty image", "[qcow2][stream]") {
  auto source = make_source(3 << 20);
  for (unsigned bits : {1u, 8u, 64u}) {
    CAPTURE(bits);
    MemoryByteSink sink;
    Qcow2StreamOptions options;
    options.layout.cluster_size = 4096;
    options.layout.refcount_bits = bits;
    options.compress = true;  // shared host clusters need counts above 1
    auto writer = Qcow2StreamWriter::create(*source, sink, options);
    REQUIRE_OK(writer);
    REQUIRE_OK((*writer)->run());
    auto image = reopen(sink.bytes());
    require_same(*source, *image);
  }
  MemoryDevice empty(0);
  MemoryByteSink sink;
  auto writer = Qcow2StreamWriter::create(empty, sink, {});
  REQUIRE_OK(writer);
  REQUIRE_OK((*writer)->run());
  auto image = reopen(sink.bytes());
  REQUIRE(image->info().size == 0);
  auto report = image->check();
  REQUIRE_OK(report);
  REQUIRE(report->leaks == 0);
}

namespace {

// Reads fail from `bad` on; with `changes`, they succeed the first time
// and read different bytes the second (a source changed between passes).
class FailingDevice final : public BlockDevice {
 public:
  FailingDevice(std::shared_ptr<BlockDevice> inner, uint64_t bad, bool changes = false)
      : inner_(std::move(inner)), bad_(bad), changes_(changes) {}
  DeviceInfo info() const override { return inner_->info(); }
  Status read(uint64_t offset, ByteSpan buffer) override {
    if (offset + buffer.size() > bad_ && !changes_) return make_error(EIO, "injected read error");
    QK_TRY(inner_->read(offset, buffer));
    if (changes_ && offset <= bad_ && bad_ < offset + buffer.size() && seen_++ > 0)
      buffer[bad_ - offset] ^= 0x5a;
    return {};
  }
  Status write(uint64_t, ConstByteSpan, WriteFlags) override { return make_error(EROFS, "ro"); }
  Status flush() override { return {}; }
  Status discard(uint64_t, uint64_t) override { return make_error(EROFS, "ro"); }
  Status write_zeroes(uint64_t, uint64_t, ZeroFlags) override { return make_error(EROFS, "ro"); }
  Status resize(uint64_t) override { return make_error(EROFS, "ro"); }
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    return inner_->extents(offset, length);
  }
  Status close() override { return {}; }

 private:
  std::shared_ptr<BlockDevice> inner_;
  uint64_t bad_;
  bool changes_;
  std::atomic<int> seen_{0};
};

struct FailingSink : ByteSink {
  uint64_t room;
  explicit FailingSink(uint64_t r) : room(r) {}
  Status write(ConstByteSpan bytes) override {
    if (bytes.size() > room) return make_error(EPIPE, "the reader went away");
    room -= bytes.size();
    return {};
  }
};

}  // namespace

TEST_CASE("qcow2 stream: a failing source or sink ends it with the error", "[qcow2][stream]") {
  auto source = make_source(4 << 20);
  FailingDevice failing(source, 2 << 20);
  MemoryByteSink sink;
  auto writer = Qcow2StreamWriter::create(failing, sink, {});
  REQUIRE_OK(writer);
  Status st = (*writer)->run();
  REQUIRE_FALSE(st.ok());
  REQUIRE(st.error().code == EIO);
  REQUIRE(st.error().message.find("injected") != std::string::npos);

  FailingSink full(100000);
  auto second = Qcow2StreamWriter::create(*source, full, {});
  REQUIRE_OK(second);
  st = (*second)->run();
  REQUIRE_FALSE(st.ok());
  REQUIRE(st.error().code == EPIPE);

  // Compressed, a changed cluster packs differently: the data pass notices.
  FailingDevice changing(source, (2 << 20) + 100, true);
  Qcow2StreamOptions packed;
  packed.compress = true;
  MemoryByteSink partial;
  auto third = Qcow2StreamWriter::create(changing, partial, packed);
  REQUIRE_OK(third);
  st = (*third)->run();
  REQUIRE_FALSE(st.ok());
  REQUIRE(st.error().code == EIO);
  REQUIRE(st.error().message.find("changed between the two passes") != std::string::npos);
  REQUIRE_FALSE(partial.bytes().empty());  // the metadata and earlier clusters went out

  Qcow2StreamOptions bad;
  bad.layout.extended_l2 = true;
  bad.layout.cluster_size = 65536;
  REQUIRE((Qcow2StreamWriter::create(*source, sink, bad)).error().code == ENOTSUP);
}

TEST_CASE("qcow2 stream: what the scan keeps spares the second pass, whole or in part", "[qcow2][stream]") {
  auto source = make_source(6 << 20);
  for (bool compress : {false, true}) {
    std::vector<uint8_t> reference;
    for (uint64_t cache : {uint64_t{0}, uint64_t{100} << 10, uint64_t{1} << 30}) {
      for (bool stepped : {false, true}) {
        CAPTURE(compress, cache, stepped);
        MemoryByteSink sink;
        Qcow2StreamOptions options;
        options.compress = compress;
        options.cache_bytes = cache;
        options.layout.cluster_size = 16384;
        auto writer = Qcow2StreamWriter::create(*source, sink, options);
        REQUIRE_OK(writer);
        if (stepped) {
          uint64_t last_done = 0;
          for (int steps = 0;; ++steps) {
            REQUIRE(steps < 1000);
            const uint64_t before = (*writer)->bytes_written();
            auto p = (*writer)->step(512 * 1024);
            REQUIRE_OK(p);
            REQUIRE(p->done <= p->total);
            REQUIRE(p->done >= last_done);
            last_done = p->done;
            // A step hands out about its budget, whatever the scan kept
            // (the metadata, written once, aside: under 1 MiB here).
            REQUIRE((*writer)->bytes_written() - before <= (1u << 20) + (512u << 10) + 16384);
            if (p->finished) break;
          }
        } else {
          REQUIRE_OK((*writer)->run());
        }
        // The same bytes whatever was kept.
        if (reference.empty()) reference = sink.bytes();
        REQUIRE(sink.bytes() == reference);
      }
    }
    auto image = reopen(reference);
    require_same(*source, *image);
  }
}
