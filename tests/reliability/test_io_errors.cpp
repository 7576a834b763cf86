// I/O errors: one error injected at each I/O of a workload, in turn. The
// operation that meets it fails with that very error; every later operation
// behaves (the fault was one-shot); and after a flush, close and reopen the
// image has no corruption and holds what the guest wrote (ranges of failed
// operations may hold old or new data).
#include "reliability_support.hpp"

using namespace qcowkit;
using namespace qcowkit::reliability;

namespace {

struct Run {
  uint64_t device_operations = 0;  // I/Os the workload made (without faults)
  int failures = 0;                // operations that failed
};

Run run_with_error(const Geometry& g, uint64_t seed, int operations, uint64_t fail_at, int error) {
  auto durable = std::make_shared<MemoryDevice>(0);
  auto faulty = std::make_shared<FaultyDevice>(durable, /*volatile_cache=*/false);
  create_image(faulty, g);
  Model model(g.size);
  Workload workload(seed, g);
  auto image = open_image(faulty);
  const uint64_t base = faulty->operations();
  if (fail_at) faulty->fail_nth(fail_at, error);
  Run run;
  for (int step = 0; step < operations; ++step) {
    Status st = workload.step(*image, model);
    if (st.ok()) continue;
    ++run.failures;
    INFO("step " << step << ": " << st.error().message);
    REQUIRE(fail_at != 0);
    REQUIRE(run.failures == 1);            // only the one injected error fails anything
    REQUIRE(st.error().code == error);     // and it is reported as itself
    REQUIRE_FALSE(st.error().message.empty());
  }
  run.device_operations = faulty->operations() - base;
  if (fail_at && run.failures == 0) {
    // The error hit an I/O whose failure the engine may absorb (none so far
    // does); then nothing may have gone wrong either. Fall through to checks.
  }
  REQUIRE_OK(image->flush());
  auto report = image->check(RepairMode::none);
  REQUIRE_OK(report);
  INFO((report->messages.empty() ? std::string() : report->messages[0]));
  REQUIRE(report->corruptions == 0);
  REQUIRE_FALSE(image->is_corrupt());
  REQUIRE_OK(image->close());

  auto reopened = open_image(faulty);
  auto again = reopened->check(RepairMode::leaks);  // a failed allocation may leak
  REQUIRE_OK(again);
  REQUIRE(again->corruptions == 0);
  std::vector<uint8_t> now(g.size);
  REQUIRE_OK(reopened->read(0, now));
  for (uint64_t s = 0; s < model.sectors(); ++s) {
    if (model.unknown[s]) continue;
    INFO("sector " << s << " differs from what the guest wrote");
    REQUIRE(std::memcmp(now.data() + s * kSector, model.current.data() + s * kSector, kSector) == 0);
  }
  return run;
}

void sweep(const Geometry& g, uint64_t seed, int operations) {
  const Run clean = run_with_error(g, seed, operations, 0, 0);
  REQUIRE(clean.device_operations > 20);
  int failed_ops = 0;
  for (uint64_t n = 1; n <= clean.device_operations; ++n) {
    const int error = n % 3 == 0 ? ENOSPC : EIO;
    INFO("error " << error << " at I/O " << n << " of " << clean.device_operations);
    failed_ops += run_with_error(g, seed, operations, n, error).failures;
  }
  // Nearly every injected error must surface (absorbing one silently would
  // hide data loss); metadata write-back on flush surfaces through flush.
  REQUIRE(failed_ops >= static_cast<int>(clean.device_operations * 9 / 10));
}

}  // namespace

TEST_CASE("an I/O error at each I/O of a workload, 4 KiB clusters", "[reliability][io-errors]") {
  sweep({4096, 16, 3, 256u << 10}, 31, 60);
}

TEST_CASE("an I/O error at each I/O of a workload, 512-byte clusters", "[reliability][io-errors]") {
  sweep({512, 16, 3, 64u << 10}, 32, 40);
}

TEST_CASE("an I/O error at each I/O of a workload, version 2 and 64 KiB clusters", "[reliability][io-errors]") {
  sweep({65536, 16, 2, 1u << 20}, 33, 40);
}
