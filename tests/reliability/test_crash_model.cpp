// The crash explorer's own parts, checked on their own: the RecordingDevice,
// crash states (subsets, fua, torn writes), the reference history's verdicts,
// and that explore() does report a device that lies about flushes.
#include <set>

#include "crash_explorer.hpp"

using namespace qcowkit;
using namespace qcowkit::testing;

namespace {

std::vector<uint8_t> bytes_of(size_t n, uint8_t value) { return std::vector<uint8_t>(n, value); }

}  // namespace

TEST_CASE("RecordingDevice keeps durable bytes apart from the unflushed log", "[reliability][crash-model]") {
  RecordingDevice disk(bytes_of(8192, 0));
  REQUIRE_OK(disk.write(0, bytes_of(1024, 1)));
  REQUIRE_OK(disk.write_zeroes(512, 512));
  REQUIRE_OK(disk.resize(16384));
  REQUIRE(disk.info().size == 16384);
  std::vector<uint8_t> now(1024);
  REQUIRE_OK(disk.read(0, now));
  REQUIRE(now[0] == 1);
  REQUIRE(now[600] == 0);
  REQUIRE(disk.durable_bytes() == bytes_of(8192, 0));
  PendingState pending = disk.pending();
  REQUIRE(pending.log.size() == 3);
  REQUIRE(pending.log[0].op == DeviceOp::write);
  REQUIRE(pending.log[2].op == DeviceOp::resize);

  REQUIRE_OK(disk.flush());
  REQUIRE(disk.unflushed_operations() == 0);
  REQUIRE(disk.durable_bytes() == disk.current_bytes());
  REQUIRE(disk.durable_bytes().size() == 16384);
}

TEST_CASE("crash states: subsets of the log, fua always kept, torn writes", "[reliability][crash-model]") {
  RecordingDevice disk(bytes_of(8192, 0));
  REQUIRE_OK(disk.write(0, bytes_of(2048, 1)));                 // 4 sectors, may tear
  REQUIRE_OK(disk.write(4096, bytes_of(512, 2), {.fua = true}));  // durable when it returned
  REQUIRE_OK(disk.write(0, bytes_of(512, 3)));                  // over the first one
  const PendingState pending = disk.pending();

  auto state = [&](CrashStyle style, uint64_t seed) { return crash_bytes(pending, choose_crash(pending, style, seed)); };
  const auto durable = state(CrashStyle::durable_only, 1);
  REQUIRE(durable[0] == 0);
  REQUIRE(durable[4096] == 2);  // fua survives even "durable only"
  REQUIRE(state(CrashStyle::everything, 1) == disk.current_bytes());

  // Torn states: the first write's sectors survive separately, and a prefix
  // tear never keeps a later sector without the earlier ones.
  std::set<std::vector<uint8_t>> first_write_patterns;
  for (uint64_t seed = 1; seed < 200; ++seed) {
    for (CrashStyle style : {CrashStyle::random_torn, CrashStyle::torn_prefix}) {
      const CrashChoice choice = choose_crash(pending, style, seed);
      const auto bytes = crash_bytes(pending, choice);
      REQUIRE(bytes[4096] == 2);
      std::vector<uint8_t> pattern;
      for (uint64_t s = 1; s < 4; ++s) pattern.push_back(bytes[s * 512]);  // sector 0 may be the third write's
      first_write_patterns.insert(pattern);
      if (style == CrashStyle::torn_prefix && choice.fates[0] == CrashChoice::Fate::torn)
        for (uint64_t s = 2; s < 4; ++s)
          if (bytes[s * 512] == 1) REQUIRE(bytes[(s - 1) * 512] == 1);
    }
  }
  INFO("some crash states keep part of a write");
  REQUIRE(first_write_patterns.size() > 2);
}

TEST_CASE("the reference history accepts only what a crash may leave", "[reliability][crash-model]") {
  GuestHistory history(bytes_of(4096, 0));
  auto write = [&](uint64_t offset, uint64_t length) {
    const uint32_t id = history.begin(GuestOp{GuestOpKind::write, offset, length});
    history.end(id, true);
    return id;
  };
  const uint32_t a = write(0, 1024);
  const uint32_t flush = history.begin(GuestOp{GuestOpKind::flush});
  history.end(flush, true);
  const uint32_t b = write(512, 512);  // not flushed
  const uint64_t before = history.tick(), after = history.tick();
  const Window crash = history.crash_window(before, after);

  std::vector<uint8_t> disk(1024);
  const auto data_a = history.data_of(a), data_b = history.data_of(b);
  std::copy(data_a.begin(), data_a.end(), disk.begin());
  REQUIRE_FALSE(history.check(0, disk, crash));  // b lost: fine
  std::copy(data_b.begin(), data_b.end(), disk.begin() + 512);
  REQUIRE_FALSE(history.check(0, disk, crash));  // b kept: fine
  // a was flushed: zeroes (the initial value) in its place are a finding.
  std::vector<uint8_t> zeroed = disk;
  std::fill(zeroed.begin(), zeroed.begin() + 512, 0);
  auto verdict = history.check(0, zeroed, crash);
  REQUIRE(verdict);
  REQUIRE(verdict->find("holds zeroes") != std::string::npos);
  // So is another sector's data.
  std::vector<uint8_t> moved = disk;
  std::copy(data_b.begin(), data_b.end(), moved.begin());
  verdict = history.check(0, moved, crash);
  REQUIRE(verdict);
  REQUIRE(verdict->find("ANOTHER sector") != std::string::npos);
  // Once b completed, a read must see b, not a.
  const uint64_t read_start = history.tick();
  REQUIRE(history.check(0, disk, GuestHistory::read_window(read_start, history.tick())) == std::nullopt);
  std::vector<uint8_t> stale = disk;
  std::copy(data_a.begin() + 512, data_a.end(), stale.begin() + 512);
  REQUIRE(history.check(0, stale, GuestHistory::read_window(read_start, history.tick())));
}

TEST_CASE("the reference history: overlapping writes in flight together may land either way",
          "[reliability][crash-model]") {
  GuestHistory history(bytes_of(512, 0));
  const uint32_t a = history.begin(GuestOp{GuestOpKind::write, 0, 512});
  const uint32_t b = history.begin(GuestOp{GuestOpKind::write, 0, 512});
  history.end(a, true);
  history.end(b, true);
  const uint32_t c = history.begin(GuestOp{GuestOpKind::discard, 0, 512});  // after both: it wins
  // While the discard runs, a read may see either write or the zeroes.
  const uint64_t t0 = history.tick(), t1 = history.tick();
  for (uint32_t id : {a, b}) REQUIRE(history.check(0, history.data_of(id), GuestHistory::read_window(t0, t1)) == std::nullopt);
  REQUIRE(history.check(0, bytes_of(512, 0), GuestHistory::read_window(t0, t1)) == std::nullopt);
  history.end(c, true);
  REQUIRE(history.check(0, bytes_of(512, 0), GuestHistory::final_window()) == std::nullopt);
  REQUIRE(history.check(0, history.data_of(a), GuestHistory::final_window()));
  // Before the discard, either write may be last.
  GuestHistory two(bytes_of(512, 0));
  const uint32_t x = two.begin(GuestOp{GuestOpKind::write, 0, 512});
  const uint32_t y = two.begin(GuestOp{GuestOpKind::write, 0, 512});
  two.end(y, true);
  two.end(x, true);
  REQUIRE(two.check(0, two.data_of(x), GuestHistory::final_window()) == std::nullopt);
  REQUIRE(two.check(0, two.data_of(y), GuestHistory::final_window()) == std::nullopt);
  REQUIRE(two.check(0, bytes_of(512, 0), GuestHistory::final_window()));
}

TEST_CASE("RecordingDevice calls its hook around every operation", "[reliability][crash-model]") {
  auto disk = std::make_shared<RecordingDevice>(bytes_of(4096, 0));
  std::vector<DeviceEvent> events;
  size_t logged_inside = 0;
  disk->set_hook([&](const DeviceEvent& e) {
    events.push_back(e);
    logged_inside = disk->pending().log.size();  // the hook may capture a crash state
  });
  REQUIRE_OK(disk->write(0, bytes_of(512, 7)));
  REQUIRE(logged_inside == 1);
  REQUIRE_OK(disk->flush());
  REQUIRE(events.size() == 4);
  REQUIRE(events[0].phase == DeviceEvent::Phase::before);
  REQUIRE(events[1].phase == DeviceEvent::Phase::after);
  REQUIRE(events[2].op == DeviceOp::flush);
  REQUIRE(events[2].sequence > events[0].sequence);
}

namespace {

// Forwards everything but flush, which it only claims to have done.
class LyingFlushDevice final : public BlockDevice {
 public:
  explicit LyingFlushDevice(std::shared_ptr<BlockDevice> inner) : inner_(std::move(inner)) {}
  DeviceInfo info() const override { return inner_->info(); }
  Status read(uint64_t o, ByteSpan b) override { return inner_->read(o, b); }
  Status write(uint64_t o, ConstByteSpan d, WriteFlags) override { return inner_->write(o, d); }
  Status flush() override { return {}; }
  Status discard(uint64_t o, uint64_t l) override { return inner_->discard(o, l); }
  Status write_zeroes(uint64_t o, uint64_t l, ZeroFlags) override { return inner_->write_zeroes(o, l); }
  Status resize(uint64_t n) override { return inner_->resize(n); }
  Result<std::vector<Extent>> extents(uint64_t o, uint64_t l) override { return inner_->extents(o, l); }
  Status close() override { return inner_->close(); }

 private:
  std::shared_ptr<BlockDevice> inner_;
};

class LyingTarget final : public ExplorerTarget {
 public:
  Result<std::shared_ptr<BlockDevice>> open(std::shared_ptr<BlockDevice> disk) override {
    return std::shared_ptr<BlockDevice>(std::make_shared<LyingFlushDevice>(std::move(disk)));
  }
  Result<std::vector<uint8_t>> recover(std::shared_ptr<MemoryDevice> disk, bool) override {
    std::vector<uint8_t> bytes(disk->info().size);
    QK_TRY(disk->read(0, bytes));
    return bytes;
  }
};

}  // namespace

TEST_CASE("explore() reports a device whose flush does nothing", "[reliability][crash-model]") {
  LyingTarget target;
  Program program;
  program.threads = {{GuestOp{GuestOpKind::write, 0, 4096}, GuestOp{GuestOpKind::flush},
                      GuestOp{GuestOpKind::write, 8192, 512}, GuestOp{GuestOpKind::flush}}};
  // After the second write's device call: the first write was "flushed".
  program.crash_points = {CrashPoint{4, {CrashStyle::durable_only}, 1}};
  const ExplorerReport report = explore(target, bytes_of(64u << 10, 0), program);
  REQUIRE(report.crash_states >= 1);
  REQUIRE(report.finding);
  INFO(*report.finding);
  REQUIRE(report.finding->find("holds zeroes") != std::string::npos);

  // The same program over an honest disk finds nothing.
  testing::CacheTarget honest(BlockCacheOptions{});
  const ExplorerReport clean = explore(honest, bytes_of(64u << 10, 0), program);
  INFO((clean.finding ? *clean.finding : std::string()));
  REQUIRE_FALSE(clean.finding);
  REQUIRE(clean.crash_states >= 1);
}
