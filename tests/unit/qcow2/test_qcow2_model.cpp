// Model-based tests of the qcow2 engine: long random workloads checked
// against a plain in-memory reference, with power cuts (FaultyDevice) at
// random moments. After every cut the image must open, check must find no
// corruption, and every sector must hold either its value at the last flush
// or one of the values written to it since (crash_candidates.hpp).
#include <cstring>
#include <random>

#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "crash_candidates.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr uint64_t kSector = 512;

// The reference: what the guest wrote, what was last flushed, and every
// value each sector was given since (after a cut it may hold any of those).
struct Model {
  std::vector<uint8_t> current, flushed;
  SectorCandidates since;

  explicit Model(uint64_t size) : current(size, 0), flushed(size, 0) {}
  // Called before the operation runs, whether it succeeds or not: a write
  // cut short by the power may still have reached the disk.
  void touch(uint64_t offset, uint64_t length, const uint8_t* data) {
    since.add_range(current, offset, length, data);
  }
  void flush() {
    flushed = current;
    since.clear();
  }
};

struct Config {
  uint32_t cluster_size;
  unsigned refcount_bits;
  int version;
  uint64_t size;
  bool extended_l2 = false;
};

std::unique_ptr<Qcow2Image> open_image(const std::shared_ptr<BlockDevice>& dev) {
  Qcow2OpenOptions options;
  options.metadata_cache_bytes = 8 * 4096;  // small: evictions happen often
  auto image = Qcow2Image::open(dev, options);
  INFO((image.ok() ? std::string() : image.error().message));
  REQUIRE(image.ok());
  return std::move(*image);
}

void run_model(const Config& cfg, uint64_t seed, int operations, int cut_every) {
  auto durable = std::make_shared<MemoryDevice>(0);
  auto faulty = std::make_shared<FaultyDevice>(durable);
  {
    Qcow2CreateOptions create;
    create.size = cfg.size;
    create.cluster_size = cfg.cluster_size;
    create.refcount_bits = cfg.refcount_bits;
    create.version = cfg.version;
    create.extended_l2 = cfg.extended_l2;
    auto made = Qcow2Image::create(faulty, create);
    REQUIRE_OK(made);
    REQUIRE_OK((*made)->close());
  }
  Model model(cfg.size);
  std::mt19937_64 rng(seed);
  auto image = open_image(faulty);
  int until_cut = 1 + static_cast<int>(rng() % (2 * cut_every));
  int cuts = 0;
  uint64_t in_doubt = 0;  // sectors written since the flush, over all cuts

  for (int op = 0; op < operations; ++op) {
    if (--until_cut == 0) {
      // Power fails in the middle of whatever comes next, or between ops,
      // sometimes with part of the unflushed writes reaching the disk.
      if (rng() % 2) {
        faulty->cut_power_after(rng() % 12);
      } else {
        faulty->power_cut(rng() % 3 == 0 ? 0.5 : 0.0, rng());
      }
    }
    const uint64_t offset = (rng() % cfg.size) & ~(kSector - 1);
    const uint64_t length = std::min<uint64_t>(cfg.size - offset, ((rng() % (3 * cfg.cluster_size)) + kSector) & ~(kSector - 1));
    Status st;
    const unsigned what = rng() % 100;
    if (what < 45) {
      std::vector<uint8_t> data(length);
      for (auto& b : data) b = static_cast<uint8_t>(rng());
      model.touch(offset, length, data.data());
      st = image->write(offset, data, {.fua = rng() % 20 == 0});
      if (st.ok()) std::memcpy(model.current.data() + offset, data.data(), length);
    } else if (what < 55) {
      model.touch(offset, length, nullptr);
      st = image->write_zeroes(offset, length, {.may_trim = rng() % 2 == 0});
      if (st.ok()) std::memset(model.current.data() + offset, 0, length);
    } else if (what < 62) {
      model.touch(offset, length, nullptr);
      st = image->discard(offset, length);
      if (st.ok()) std::memset(model.current.data() + offset, 0, length);
    } else if (what < 68) {
      const uint64_t cluster = (rng() % (cfg.size / cfg.cluster_size)) * cfg.cluster_size;
      std::vector<uint8_t> data(cfg.cluster_size, 0);
      for (size_t i = 0; i < data.size() / 3; ++i) data[i] = static_cast<uint8_t>(i ^ seed);
      model.touch(cluster, cfg.cluster_size, data.data());
      st = image->write_compressed(cluster, data);
      if (st.ok()) std::memcpy(model.current.data() + cluster, data.data(), data.size());
    } else if (what < 80) {
      st = image->flush();
      if (st.ok()) model.flush();
    } else {
      std::vector<uint8_t> data(length);
      st = image->read(offset, data);
      if (st.ok()) REQUIRE(std::memcmp(data.data(), model.current.data() + offset, length) == 0);
    }
    if (st.ok()) continue;

    // The only failure expected is the power cut.
    INFO(st.error().message);
    REQUIRE_FALSE(faulty->powered());
    ++cuts;
    image.reset();  // its close fails quietly: there is no power
    faulty->revive();
    faulty->clear_faults();
    image = open_image(faulty);
    auto report = image->check(RepairMode::none);
    REQUIRE_OK(report);
    INFO("after cut " << cuts << ": " << (report->messages.empty() ? "" : report->messages[0]));
    REQUIRE(report->corruptions == 0);
    // Every sector holds its flushed value or one written to it since.
    std::vector<uint8_t> now(cfg.size);
    REQUIRE_OK(image->read(0, now));
    for (uint64_t s = 0; s < cfg.size / kSector; ++s) {
      std::string why;
      const bool allowed = model.since.allows(s, now.data() + s * kSector, model.flushed.data() + s * kSector, &why);
      INFO("seed " << seed << ", operation " << op << ": " << why);
      REQUIRE(allowed);
    }
    in_doubt += model.since.sectors_in_doubt();
    auto repaired = image->check(RepairMode::leaks);
    REQUIRE_OK(repaired);
    REQUIRE(repaired->leaks == 0);
    REQUIRE(repaired->corruptions == 0);
    model.current = now;
    model.flush();
    until_cut = 1 + static_cast<int>(rng() % (2 * cut_every));
  }
  REQUIRE_OK(image->flush());
  auto final_report = image->check(RepairMode::none);
  REQUIRE_OK(final_report);
  REQUIRE(final_report->corruptions == 0);
  REQUIRE(final_report->leaks == 0);
  std::vector<uint8_t> now(cfg.size);
  REQUIRE_OK(image->read(0, now));
  REQUIRE(now == model.current);
  REQUIRE(cuts > 0);
  REQUIRE(in_doubt > 0);  // the cuts did meet unflushed writes
}

}  // namespace

TEST_CASE("qcow2 model: 10,000 operations with power cuts, 4 KiB clusters", "[qcow2][model]") {
  run_model({4096, 16, 3, 2u << 20}, 1, 10000, 150);
}

TEST_CASE("qcow2 model: power cuts with 512-byte clusters and 64-bit refcounts", "[qcow2][model]") {
  run_model({512, 64, 3, 512u << 10}, 2, 3000, 100);
}

TEST_CASE("qcow2 model: power cuts on a version 2 image", "[qcow2][model]") {
  run_model({65536, 16, 2, 4u << 20}, 3, 3000, 100);
}

TEST_CASE("qcow2 model: power cuts with 1-bit refcounts", "[qcow2][model]") {
  run_model({4096, 1, 3, 1u << 20}, 4, 3000, 100);
}

TEST_CASE("qcow2 model: power cuts with extended L2 entries", "[qcow2][model]") {
  run_model({32768, 16, 3, 4u << 20, true}, 5, 3000, 100);
}
