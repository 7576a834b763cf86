// fuzz_copy: drives the copy engine with a DeviceSink. The input picks a
// source (its size, sector size, and runs of data, zero bytes inside data,
// zero and hole extents), the engine's options (chunk size, granule,
// workers, order, -S, whether the destination starts zeroed, a toy
// compression stage), an I/O error at some offset, a cancel after some
// commits, and whether run() or step() drives it. A finished copy must
// equal the source byte for byte; a failed one must fail with the injected
// error or ECANCELED, never anything else, and never hang.
#include <memory>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/copy_engine.hpp"
#include "qcowkit/device_sink.hpp"
#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"

using namespace qcowkit;
using namespace qcowkit::fuzz;

namespace {

constexpr uint64_t kMaxSize = 1u << 20;

// A memory device whose extents are the ones the input chose (the bytes
// behind zero and hole extents are zero, so the extents never lie).
class ChosenExtents : public BlockDevice {
 public:
  ChosenExtents(std::shared_ptr<BlockDevice> inner, std::vector<Extent> extents)
      : inner_(std::move(inner)), extents_(std::move(extents)) {}
  DeviceInfo info() const override { return inner_->info(); }
  Status read(uint64_t o, ByteSpan b) override { return inner_->read(o, b); }
  Status write(uint64_t o, ConstByteSpan d, WriteFlags f) override { return inner_->write(o, d, f); }
  Status flush() override { return inner_->flush(); }
  Status discard(uint64_t o, uint64_t n) override { return inner_->discard(o, n); }
  Status write_zeroes(uint64_t o, uint64_t n, ZeroFlags f) override { return inner_->write_zeroes(o, n, f); }
  Status resize(uint64_t n) override { return inner_->resize(n); }
  Status close() override { return inner_->close(); }
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    std::vector<Extent> out;
    const uint64_t end = offset + length;
    for (const Extent& e : extents_) {
      const uint64_t from = std::max(offset, e.offset), to = std::min(end, e.offset + e.length);
      if (from < to) out.push_back({from, to - from, e.kind});
      if (out.size() == 3) break;  // short answers: the engine must ask again
    }
    return out;
  }

 private:
  std::shared_ptr<BlockDevice> inner_;
  std::vector<Extent> extents_;
};

// Cancels the engine after a number of commits.
class CancellingSink : public CopySink {
 public:
  CancellingSink(CopySink& inner, int cancel_after) : inner_(inner), left_(cancel_after) {}
  CopyEngine* engine = nullptr;
  Status prepare(CopyChunk& c) override { return inner_.prepare(c); }
  Result<Flow> commit(CopyChunk& c) override {
    if (left_ >= 0 && left_-- == 0) engine->cancel();
    return inner_.commit(c);
  }
  Status finish() override { return inner_.finish(); }

 private:
  CopySink& inner_;
  std::atomic<int> left_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  const uint32_t sector = in.u8() % 2 ? 512 : 1;
  const uint64_t src_size = in.below(kMaxSize / sector + 1) * sector;
  auto memory = std::make_shared<MemoryDevice>(src_size, sector);

  // Runs of the source, each a whole number of sectors.
  std::vector<Extent> extents;
  std::vector<uint8_t> expected(src_size, 0);
  for (uint64_t pos = 0; pos < src_size;) {
    const uint64_t length = std::min(src_size - pos, (1 + in.below(64)) * 512 * (1 + in.below(8)));
    const uint8_t kind = in.u8() % 4;
    if (kind >= 2) {  // data: random bytes, with a zero run inside sometimes
      for (uint64_t i = 0; i < length; ++i) expected[pos + i] = static_cast<uint8_t>(in.u8() | 1);
      if (kind == 3) {
        const uint64_t zero_from = in.below(length), zero_len = in.below(length - zero_from + 1);
        std::fill_n(expected.begin() + pos + zero_from, zero_len, 0);
      }
      require_ok(memory->write(pos, ConstByteSpan(expected.data() + pos, length)), "filling the source");
    }
    const ExtentKind ek = kind >= 2 ? ExtentKind::data : kind == 1 ? ExtentKind::zero : ExtentKind::hole;
    if (!extents.empty() && extents.back().kind == ek)
      extents.back().length += length;
    else
      extents.push_back({pos, length, ek});
    pos += length;
  }
  auto chosen = std::make_shared<ChosenExtents>(memory, extents);
  FaultyDevice source(chosen, false);
  const bool inject = in.u8() % 4 == 0;
  if (inject && src_size) source.fail_range(in.below(src_size) / sector * sector, sector, EIO, FaultOp::read);

  CopyEngineOptions options;
  options.alignment = sector;
  const uint64_t chunk_units = 1 + in.below(64);
  options.chunk_size = chunk_units * 4096;
  options.granule = in.u8() % 2 ? 4096 : sector;
  options.use_extents = in.u8() % 4 != 0;
  options.workers = 1 + in.below(8);
  options.in_order = in.u8() % 2;
  options.max_queued = in.below(4);
  DeviceSinkOptions sink_options;
  sink_options.min_zero_run = in.below(3) * 4096;
  sink_options.destination_is_zero = in.u8() % 2;
  options.deliver_unmapped = !sink_options.destination_is_zero;
  const bool compress = in.u8() % 4 == 0 && options.granule == 4096;
  const bool stepped = in.u8() % 2;
  const int cancel_after = in.u8() % 8 == 0 ? static_cast<int>(in.below(16)) : -1;

  MemoryDevice dst(src_size, sector);
  if (!sink_options.destination_is_zero) {
    std::vector<uint8_t> noise(src_size, 0xa5);
    require_ok(dst.write(0, noise), "filling the destination");
  }
  if (compress) {
    // Toy codec: a cluster of one repeated byte packs to that byte.
    options.in_order = true;
    sink_options.cluster_size = 4096;
    sink_options.compress_cluster = [](ConstByteSpan c) -> Result<std::vector<uint8_t>> {
      for (uint8_t b : c)
        if (b != c[0]) return std::vector<uint8_t>{};
      return std::vector<uint8_t>{c[0]};
    };
    sink_options.store_packed = [&dst, src_size](uint64_t offset, ConstByteSpan packed) {
      std::vector<uint8_t> cluster(std::min<uint64_t>(4096, src_size - offset), packed[0]);
      return dst.write(offset, cluster);
    };
  }
  DeviceSink device_sink(dst, sink_options);
  CancellingSink sink(device_sink, cancel_after);
  auto engine = CopyEngine::create(source, sink, options);
  require_ok(engine, "creating the engine");
  sink.engine = engine->get();

  Status outcome;
  if (stepped) {
    for (int steps = 0;; ++steps) {
      auto p = (*engine)->step(in.below(4) * 65536);
      if (!p.ok()) {
        outcome = std::move(p).error();
        break;
      }
      require(p->done <= p->total, "progress past the total");
      if (p->finished) break;
      require(steps < 100000, "step() made no progress");
    }
  } else {
    outcome = (*engine)->run();
  }
  if (!outcome.ok()) {
    const int code = outcome.error().code;
    require(code == ECANCELED || (inject && code == EIO),
            "unexpected failure: " + outcome.error().message);
    return 0;
  }
  std::vector<uint8_t> copied(src_size);
  require_ok(dst.read(0, copied), "reading the destination");
  require(copied == expected, "the copy differs from the source");
  return 0;
}
