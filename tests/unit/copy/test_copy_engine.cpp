// The copy engine (core/src/copy) and the executor it runs on: ordering,
// the zero-detection rule, cooperative steps, cancel, errors in order, the
// compression stage of DeviceSink, and bounded memory.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "copy/zero_runs.hpp"
#include "qcowkit/copy_engine.hpp"
#include "qcowkit/device_sink.hpp"
#include "qcowkit/executor.hpp"
#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;

// Records every commit; optionally stops at an offset.
class RecordingSink : public CopySink {
 public:
  Result<Flow> commit(CopyChunk& chunk) override {
    std::lock_guard lock(mutex);
    offsets.push_back(chunk.offset);
    bytes += chunk.length;
    if (!chunk.mapped) unmapped += chunk.length;
    if (stop_at && chunk.offset >= *stop_at) return Flow::stop;
    return Flow::proceed;
  }
  Status finish() override {
    finished = true;
    return {};
  }
  std::mutex mutex;
  std::vector<uint64_t> offsets;
  uint64_t bytes = 0, unmapped = 0;
  std::optional<uint64_t> stop_at;
  bool finished = false;
};

std::unique_ptr<CopyEngine> make_engine(BlockDevice& src, CopySink& sink,
                                        CopyEngineOptions options) {
  auto engine = CopyEngine::create(src, sink, std::move(options));
  REQUIRE_OK(engine);
  return std::move(engine).value();
}

using Pieces = std::vector<CopyChunk::Piece>;

Pieces split(const std::vector<uint8_t>& data, uint64_t min_run, uint64_t unit = 512,
             uint64_t alignment = 1) {
  Pieces out;
  engine::split_zero_runs(ConstByteSpan(data), 0, {min_run, unit, alignment}, out);
  return out;
}

}  // namespace

TEST_CASE("executor: every index runs once and nested batches finish", "[copy][executor]") {
  std::vector<std::atomic<int>> seen(100);
  Executor::shared().run(seen.size(), [&](size_t i) {
    ++seen[i];
    // A job that runs a batch of its own must not wait for busy threads.
    std::atomic<int> inner{0};
    Executor::shared().run(3, [&](size_t) { ++inner; });
    REQUIRE(inner == 3);
  });
  for (auto& n : seen) REQUIRE(n == 1);
  Executor::shared().run(0, [](size_t) { FAIL("no job for an empty batch"); });
}

TEST_CASE("executor: run_on_pool runs the job once on a pool thread", "[copy][executor]") {
  const auto caller = std::this_thread::get_id();
  for (int round = 0; round < 20; ++round) {
    std::thread::id ran_on;
    int calls = 0;
    Executor::shared().run_on_pool([&] {
      ran_on = std::this_thread::get_id();
      ++calls;
    });
    REQUIRE(calls == 1);
    REQUIRE(ran_on != caller);
  }
  // While a batch keeps pool threads busy, run_on_pool still gets one.
  std::atomic<int> done{0};
  Executor::shared().run(4, [&](size_t i) {
    if (i == 0) Executor::shared().run_on_pool([&] { ++done; });
    ++done;
  });
  REQUIRE(done == 5);
}

TEST_CASE("zero rule: runs of whole units at least min_run long", "[copy][zero]") {
  std::vector<uint8_t> data(64 * KiB, 0);
  SECTION("all zero is one zero piece") {
    auto p = split(data, 4096);
    REQUIRE(p.size() == 1);
    REQUIRE(p[0].zero);
    REQUIRE(p[0].length == data.size());
  }
  SECTION("min_run 0 writes everything") {
    auto p = split(data, 0);
    REQUIRE(p.size() == 1);
    REQUIRE_FALSE(p[0].zero);
  }
  SECTION("a short zero run stays data, a long one does not") {
    data[0] = 1;             // unit 0 data
    data[2048] = 1;          // units 1..3 zero (1536 bytes): too short
    data[40 * KiB] = 1;      // 4608..40959 zero: long enough
    auto p = split(data, 4096);
    REQUIRE(p.size() == 4);
    REQUIRE_FALSE(p[0].zero);
    REQUIRE(p[0].start == 0);
    REQUIRE(p[0].length == 2560);
    REQUIRE(p[1].zero);
    REQUIRE(p[1].start == 2560);
    REQUIRE(p[1].length == 40 * KiB - 2560);
    REQUIRE_FALSE(p[2].zero);
    REQUIRE(p[3].zero);  // the tail, 64K - 40.5K of zeroes
    REQUIRE(p[3].start + p[3].length == data.size());
  }
  SECTION("a short last unit counts only when aligned") {
    std::vector<uint8_t> odd(4096 + 100, 0);
    odd[0] = 1;
    auto p = split(odd, 512, 512, 512);
    REQUIRE(p.back().zero == false);  // the 100-byte tail cannot be a request
    auto q = split(odd, 512, 512, 4);
    REQUIRE(q.back().zero);
  }
  SECTION("pieces cover the buffer exactly") {
    for (uint64_t at : {0ull, 511ull, 512ull, 12345ull, 65535ull}) data[at] = 7;
    uint64_t pos = 0;
    for (const auto& piece : split(data, 1024)) {
      REQUIRE(piece.start == pos);
      pos += piece.length;
    }
    REQUIRE(pos == data.size());
  }
}

TEST_CASE("engine: in order, commits come in source order on many workers", "[copy][engine]") {
  MemoryDevice src(8 * MiB);
  REQUIRE_OK(fill_random(src, 3));
  for (unsigned workers : {1u, 4u, 16u}) {
    RecordingSink sink;
    CopyEngineOptions options;
    options.chunk_size = 64 * KiB;
    options.workers = workers;
    REQUIRE_OK(make_engine(src, sink, options)->run());
    REQUIRE(sink.offsets.size() == 128);
    REQUIRE(std::is_sorted(sink.offsets.begin(), sink.offsets.end()));
    REQUIRE(sink.finished);
  }
}

TEST_CASE("engine: any order still commits every chunk once", "[copy][engine]") {
  MemoryDevice src(8 * MiB);
  REQUIRE_OK(fill_random(src, 4));
  RecordingSink sink;
  CopyEngineOptions options;
  options.chunk_size = 64 * KiB;
  options.workers = 8;
  options.in_order = false;
  REQUIRE_OK(make_engine(src, sink, options)->run());
  std::set<uint64_t> unique(sink.offsets.begin(), sink.offsets.end());
  REQUIRE(unique.size() == 128);
  REQUIRE(sink.bytes == 8 * MiB);
}

TEST_CASE("engine: holes are skipped, or delivered unread when asked", "[copy][engine]") {
  MemoryDevice src(64 * MiB);
  REQUIRE_OK(src.write(MiB, pattern_bytes(128 * KiB, 1)));
  REQUIRE_OK(src.write(40 * MiB, pattern_bytes(64 * KiB, 2)));
  {
    RecordingSink sink;
    REQUIRE_OK(make_engine(src, sink, {})->run());
    REQUIRE(sink.bytes == 192 * KiB);
    REQUIRE(sink.unmapped == 0);
  }
  {
    RecordingSink sink;
    CopyEngineOptions options;
    options.deliver_unmapped = true;
    options.max_unmapped_chunk = 16 * MiB;
    REQUIRE_OK(make_engine(src, sink, options)->run());
    REQUIRE(sink.bytes == 64 * MiB);
    REQUIRE(sink.unmapped == 64 * MiB - 192 * KiB);
  }
}

TEST_CASE("engine: step() does the work cooperatively, a budget at a time", "[copy][engine]") {
  MemoryDevice src(16 * MiB);
  REQUIRE_OK(fill_random(src, 5));
  MemoryDevice dst(16 * MiB);
  DeviceSinkOptions sink_options;
  sink_options.flush_at_end = true;
  DeviceSink sink(dst, sink_options);
  CopyEngineOptions options;
  options.workers = 4;  // step() uses only the caller's thread anyway
  auto engine = make_engine(src, sink, options);
  uint64_t last = 0, steps = 0;
  for (;;) {
    auto p = engine->step(2 * MiB);
    REQUIRE_OK(p);
    REQUIRE(p->done >= last);
    REQUIRE(p->total == 16 * MiB);
    last = p->done;
    ++steps;
    if (p->finished) break;
    REQUIRE(steps < 100);
  }
  REQUIRE(steps == 8);  // the last step also finishes
  REQUIRE(read_all(dst, 0, 16 * MiB) == read_all(src, 0, 16 * MiB));
}

TEST_CASE("engine: cancel stops run() and step() with ECANCELED", "[copy][engine]") {
  MemoryDevice src(16 * MiB);
  REQUIRE_OK(fill_random(src, 6));
  RecordingSink sink;
  CopyEngineOptions options;
  options.chunk_size = 64 * KiB;
  auto engine = make_engine(src, sink, options);
  REQUIRE_OK(engine->step(MiB));
  engine->cancel();
  auto p = engine->step(MiB);
  REQUIRE_FALSE(p.ok());
  REQUIRE(p.error().code == ECANCELED);

  struct CancellingSink : RecordingSink {
    CopyEngine* engine = nullptr;
    Result<Flow> commit(CopyChunk& chunk) override {
      if (chunk.offset == 4 * MiB) engine->cancel();
      return RecordingSink::commit(chunk);
    }
  } cancelling;
  auto threaded = make_engine(src, cancelling, options);
  cancelling.engine = threaded.get();
  Status st = threaded->run();
  REQUIRE(st.error().code == ECANCELED);
  REQUIRE(cancelling.bytes < 16 * MiB);
  REQUIRE_FALSE(cancelling.finished);
}

TEST_CASE("engine: in order, the first error in source order wins", "[copy][engine]") {
  auto mem = std::make_shared<MemoryDevice>(8 * MiB);
  REQUIRE_OK(fill_random(*mem, 7));
  FaultyDevice src(mem, false);
  src.fail_range(6 * MiB, 4096, EIO, FaultOp::read);
  src.fail_range(2 * MiB, 4096, ENXIO, FaultOp::read);
  for (int round = 0; round < 5; ++round) {
    RecordingSink sink;
    CopyEngineOptions options;
    options.chunk_size = 256 * KiB;
    options.workers = 8;
    options.operation = "test";
    Status st = make_engine(src, sink, options)->run();
    REQUIRE(st.error().code == ENXIO);
    REQUIRE(st.error().message.find("test: read failed at offset 2097152") != std::string::npos);
    REQUIRE(sink.bytes == 2 * MiB);  // everything before it, nothing after
  }
}

TEST_CASE("engine: a stopping sink ends the copy successfully", "[copy][engine]") {
  MemoryDevice src(8 * MiB);
  REQUIRE_OK(fill_random(src, 8));
  RecordingSink sink;
  sink.stop_at = 3 * MiB;
  CopyEngineOptions options;
  options.workers = 4;
  REQUIRE_OK(make_engine(src, sink, options)->run());
  REQUIRE(sink.offsets.back() == 3 * MiB);
  REQUIRE_FALSE(sink.finished);
}

TEST_CASE("engine: a range, and options that make no sense", "[copy][engine]") {
  MemoryDevice src(8 * MiB);
  REQUIRE_OK(fill_random(src, 9));
  RecordingSink sink;
  CopyEngineOptions options;
  options.begin = 2 * MiB;
  options.end = 5 * MiB;
  REQUIRE_OK(make_engine(src, sink, options)->run());
  REQUIRE(sink.bytes == 3 * MiB);
  REQUIRE(sink.offsets.front() == 2 * MiB);
  options.begin = 9 * MiB;
  REQUIRE(CopyEngine::create(src, sink, options).error().code == EINVAL);
  options.begin = 0;
  options.alignment = 512;
  options.chunk_size = 1000;
  REQUIRE(CopyEngine::create(src, sink, options).error().code == EINVAL);
}

TEST_CASE("engine: memory stays bounded by workers and queue", "[copy][engine]") {
  // A sink that blocks the first chunk's commit a while: the others must
  // wait in a bounded queue rather than all be read.
  struct SlowFirst : CopySink {
    std::atomic<unsigned> prepared{0}, max_ahead{0};
    std::atomic<unsigned> committed{0};
    Status prepare(CopyChunk&) override {
      const unsigned ahead = ++prepared - committed;
      unsigned seen = max_ahead.load();
      while (ahead > seen && !max_ahead.compare_exchange_weak(seen, ahead)) {
      }
      return {};
    }
    Result<Flow> commit(CopyChunk& chunk) override {
      if (chunk.offset == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ++committed;
      return Flow::proceed;
    }
  } sink;
  MemoryDevice src(32 * MiB);
  REQUIRE_OK(fill_random(src, 10));
  CopyEngineOptions options;
  options.chunk_size = 64 * KiB;
  options.workers = 4;
  options.max_queued = 4;
  REQUIRE_OK(make_engine(src, sink, options)->run());
  REQUIRE(sink.committed == 512);
  REQUIRE(sink.max_ahead <= 4 + 4 + 1);
}

TEST_CASE("device sink: compression stage stores packed clusters in order", "[copy][sink]") {
  const uint64_t size = 4 * MiB + 1000;
  MemoryDevice src(size);
  std::vector<uint8_t> uniform(64 * KiB, 0x5a);
  REQUIRE_OK(src.write(MiB, uniform));
  REQUIRE_OK(src.write(3 * MiB, pattern_bytes(64 * KiB, 3)));
  REQUIRE_OK(src.write(4 * MiB, pattern_bytes(1000, 4)));
  MemoryDevice dst(size);
  std::vector<uint64_t> stored;
  DeviceSinkOptions sink_options;
  sink_options.cluster_size = 64 * KiB;
  sink_options.compress_cluster = [](ConstByteSpan cluster) -> Result<std::vector<uint8_t>> {
    REQUIRE(cluster.size() == 64 * KiB);
    bool same = std::all_of(cluster.begin(), cluster.end(), [&](uint8_t b) { return b == cluster[0]; });
    return same ? std::vector<uint8_t>{cluster[0]} : std::vector<uint8_t>{};
  };
  sink_options.store_packed = [&](uint64_t offset, ConstByteSpan packed) -> Status {
    stored.push_back(offset);
    std::vector<uint8_t> cluster(std::min<uint64_t>(64 * KiB, size - offset), packed[0]);
    return dst.write(offset, cluster);
  };
  DeviceSink sink(dst, sink_options);
  CopyEngineOptions options;
  options.granule = 64 * KiB;
  options.workers = 4;
  REQUIRE_OK(make_engine(src, sink, options)->run());
  REQUIRE(stored == std::vector<uint64_t>{MiB});
  REQUIRE(read_all(dst, 0, size) == read_all(src, 0, size));
  REQUIRE(dst.allocated_bytes() == 3 * MemoryDevice::kChunkSize);
}

TEST_CASE("engine: a granule coarser than the extents walks back, never skips", "[copy][engine]") {
  // Data runs a little past a granule boundary, then a hole: the hole's
  // start is rounded up to the next granule, before the extent just read.
  MemoryDevice src(8 * MiB);
  for (uint64_t at : {uint64_t{0}, 3 * MiB + 64 * KiB, 5 * MiB})
    REQUIRE_OK(src.write(at, pattern_bytes(64 * KiB + 4096, at)));
  MemoryDevice dst(8 * MiB);
  DeviceSink sink(dst, {});
  CopyEngineOptions options;
  options.granule = 256 * KiB;
  options.workers = 4;
  REQUIRE_OK(make_engine(src, sink, options)->run());
  REQUIRE(read_all(dst, 0, 8 * MiB) == read_all(src, 0, 8 * MiB));
}
