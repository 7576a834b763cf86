// Power cuts at every point of a workload, not only random ones (the model
// test in tests/unit does those): the device loses power after its Nth
// mutating operation, for every N of a small workload and a few hundred N of
// a larger one, and with a random subset of the unflushed writes reaching the
// disk. Each time the image must open, check must find no corruption, repair
// must fix any leak, and every byte flushed before the cut must be intact.
#include <optional>

#include "reliability_support.hpp"

using namespace qcowkit;
using namespace qcowkit::reliability;

namespace {

// Runs `operations` steps of the seeded workload on a fresh image, with the
// device armed to lose power after `cut_after` mutating operations (or cut by
// hand at `cut_at_step` keeping `keep` of the unflushed log). Returns the
// mutating operations the device saw, for sizing the sweep.
uint64_t run_with_cut(const Geometry& g, uint64_t seed, int operations, std::optional<uint64_t> cut_after,
                      int cut_at_step = -1, double keep = 0.0) {
  auto durable = std::make_shared<MemoryDevice>(0);
  auto faulty = std::make_shared<FaultyDevice>(durable);
  create_image(faulty, g);
  REQUIRE_OK(faulty->flush());
  const uint64_t base = faulty->mutating_operations();
  Model model(g.size);
  Workload workload(seed, g);
  auto image = open_image(faulty);
  if (cut_after) faulty->cut_power_after(*cut_after);
  bool cut = false;
  for (int step = 0; step < operations && !cut; ++step) {
    if (step == cut_at_step) {
      faulty->power_cut(keep, seed * 31 + step);
      cut = true;
      break;
    }
    Status st = workload.step(*image, model);
    if (!st.ok()) {
      INFO(st.error().message);
      REQUIRE_FALSE(faulty->powered());  // the cut is the only failure expected
      cut = true;
    }
  }
  if (!cut) {
    // The budget outlived the workload: the cut comes at the final close.
    faulty->power_cut();
  }
  const uint64_t seen = faulty->mutating_operations() - base;
  image.reset();
  faulty->revive();
  faulty->clear_faults();
  auto reopened = open_image(faulty);
  verify_after_cut(*reopened, model);
  // After recovery the image works as usual.
  std::vector<uint8_t> data(g.cluster_size, 0x5c);
  REQUIRE_OK(reopened->write(0, data));
  REQUIRE_OK(reopened->flush());
  auto report = reopened->check(RepairMode::none);
  REQUIRE_OK(report);
  REQUIRE(report->corruptions == 0);
  REQUIRE(report->leaks == 0);
  return seen;
}

uint64_t count_mutations(const Geometry& g, uint64_t seed, int operations) {
  // No cut until the end: how many mutating operations the workload makes.
  return run_with_cut(g, seed, operations, std::nullopt);
}

}  // namespace

TEST_CASE("power cut after every Nth write of a small workload", "[reliability][power]") {
  const Geometry g{4096, 16, 3, 256u << 10};
  const uint64_t total = count_mutations(g, 11, 40);
  REQUIRE(total > 20);
  for (uint64_t n = 0; n <= total; ++n) {
    INFO("cut after " << n << " of " << total << " mutating operations");
    run_with_cut(g, 11, 40, n);
  }
}

TEST_CASE("power cut after every Nth write, 512-byte clusters and 1-bit refcounts", "[reliability][power]") {
  const Geometry g{512, 1, 3, 64u << 10};
  const uint64_t total = count_mutations(g, 12, 30);
  REQUIRE(total > 20);
  for (uint64_t n = 0; n <= total; ++n) {
    INFO("cut after " << n << " of " << total);
    run_with_cut(g, 12, 30, n);
  }
}

TEST_CASE("power cut after every Nth write of a version 2 image", "[reliability][power]") {
  const Geometry g{65536, 16, 2, 2u << 20};
  const uint64_t total = count_mutations(g, 13, 30);
  for (uint64_t n = 0; n <= total; ++n) {
    INFO("cut after " << n << " of " << total);
    run_with_cut(g, 13, 30, n);
  }
}

TEST_CASE("power cut after a few hundred random N of a larger workload", "[reliability][power]") {
  const Geometry g{4096, 16, 3, 1u << 20};
  const uint64_t total = count_mutations(g, 21, 600);
  REQUIRE(total > 300);
  std::mt19937_64 rng(99);
  for (int i = 0; i < 300; ++i) {
    const uint64_t n = rng() % (total + 1);
    INFO("cut after " << n << " of " << total);
    run_with_cut(g, 21, 600, n);
  }
}

TEST_CASE("power cut keeping a random subset of the unflushed writes", "[reliability][power]") {
  const Geometry g{4096, 16, 3, 512u << 10};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    const int at = 1 + static_cast<int>(rng() % 150);
    const double keep = 0.1 + 0.8 * static_cast<double>(rng() % 1000) / 1000.0;
    INFO("cut at step " << at << " keeping " << keep << " of the unflushed writes, seed " << 100 + i);
    run_with_cut(g, 100 + i, 150, std::nullopt, at, keep);
  }
}
