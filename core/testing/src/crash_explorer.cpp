#include "qcowkit/testing/crash_explorer.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <tuple>

#if QCOWKIT_HAVE_THREADS
#include <chrono>
#include <thread>
#endif

namespace qcowkit::testing {

namespace {

uint64_t mix(uint64_t x) {
  x += 0x9e37'79b9'7f4a'7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58'476d'1ce4'e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d0'49bb'1331'11ebull;
  return x ^ (x >> 31);
}

std::string describe_event(const DeviceEvent& e) {
  std::string out = std::string(e.phase == DeviceEvent::Phase::before ? "before" : "after") +
                    " device " + to_string(e.op) + " #" + std::to_string(e.sequence);
  if (e.op != DeviceOp::flush) out += " at " + std::to_string(e.offset) + "+" + std::to_string(e.length);
  if (e.fua) out += " fua";
  return out;
}

// One run of a program. Shared by the guest threads and the hook.
class Run {
 public:
  Run(ExplorerTarget& target, const Program& program) : target_(target), program_(program) {
    for (const CrashPoint& p : program.crash_points) points_[p.event] = &p;
  }

  ExplorerReport go(std::vector<uint8_t> initial_disk) {
    ExplorerReport report;
    disk_ = std::make_shared<RecordingDevice>(std::move(initial_disk), target_.disk_sector_size());
    disk_->set_hook([this](const DeviceEvent& e) { on_event(e); });
    auto opened = target_.open(disk_);
    if (!opened.ok()) {
      report.finding = "the target does not open: " + opened.error().message;
      return report;
    }
    guest_ = std::move(*opened);
    guest_size_ = guest_->info().size;
    std::vector<uint8_t> initial(guest_size_);
    Status st = guest_->read(0, initial);
    if (!st.ok()) {
      report.finding = "reading the initial contents: " + st.error().message;
      return report;
    }
    history_ = std::make_unique<GuestHistory>(std::move(initial));
    armed_ = true;

    run_threads();
    if (!stop_) finish();
    armed_ = false;
    guest_.reset();

    report.operations = history_->operations();
    report.device_events = events_;
    report.crash_points = crash_points_;
    report.crash_states = crash_states_;
    report.reads_checked = reads_;
    report.final_disk = disk_->durable_bytes();
    if (finding_) report.finding = *finding_ + "\n\noperations (start and end on one clock):\n" + history_->dump();
    return report;
  }

 private:
  void found(const std::string& what) {
    std::lock_guard lock(finding_mutex_);
    if (!finding_) finding_ = what;
    stop_ = true;
  }

  void on_event(const DeviceEvent& e) {
    if (!armed_) return;
    const uint64_t n = ++events_;
#if QCOWKIT_HAVE_THREADS
    // Pauses inside device operations widen the windows in which other
    // requests overtake this one (they change timing, never the checks).
    if (program_.jitter_seed) {
      const uint64_t h = mix(program_.jitter_seed ^ n);
      // Rare, because a paused thread may hold the engine's locks and a
      // loaded machine turns every pause into a long one.
      if (h % 128 == 0)
        std::this_thread::sleep_for(std::chrono::microseconds(20 + h / 128 % 200));
      else if (h % 32 == 1)
        std::this_thread::yield();
    }
#endif
    auto it = points_.find(n);
    if (it != points_.end() && !stop_) check_crash_point(*it->second, describe_event(e));
    if (e.op == DeviceOp::flush && e.phase == DeviceEvent::Phase::before && program_.flush_crash_every) {
      const uint64_t f = ++flush_events_;
      if (f % program_.flush_crash_every == 0 && !stop_) {
        const uint64_t h = mix(program_.jitter_seed ^ (f << 20));
        CrashPoint point{n, {}, h};
        for (unsigned i = 0; i < program_.flush_crash_styles; ++i)
          point.styles.push_back(static_cast<CrashStyle>(mix(h + i) % kCrashStyles));
        check_crash_point(point, describe_event(e));
      }
    }
  }

  void check_crash_point(const CrashPoint& point, const std::string& where) {
    const uint64_t before = history_->tick();
    const PendingState pending = disk_->pending();
    const uint64_t after = history_->tick();
    const Window window = history_->crash_window(before, after);
    ++crash_points_;
    // With nothing unflushed, every style would give the same state.
    std::vector<CrashStyle> styles;
    if (pending.log.empty())
      styles.push_back(CrashStyle::durable_only);
    else
      styles = point.styles;
    for (size_t i = 0; i < styles.size() && !stop_; ++i) {
      const CrashChoice choice = choose_crash(pending, styles[i], point.seed + i);
      const std::vector<uint8_t> bytes = crash_bytes(pending, choice);
      auto guest = target_.recover(memory_device_of(bytes), false);
      ++crash_states_;
      const std::string context = std::string("crash state (") + to_string(styles[i]) + ") taken " + where +
                                  " between instants " + std::to_string(before) + " and " +
                                  std::to_string(after) + "\ndisk: " + describe(pending, choice) + "\n";
      if (!guest.ok()) {
        found(context + "does not recover: " + guest.error().message);
        return;
      }
      if (guest->size() != guest_size_) {
        found(context + "has guest size " + std::to_string(guest->size()) + ", not " +
              std::to_string(guest_size_));
        return;
      }
      if (auto bad = history_->check(0, *guest, window)) {
        found(context + *bad);
        return;
      }
    }
  }

  void run_op(const GuestOp& op) {
    Status st;
    uint32_t id = 0;
    if (op.kind == GuestOpKind::read) {
      std::vector<uint8_t> data(op.length);
      const uint64_t start = history_->tick();
      st = guest_->read(op.offset, data);
      const uint64_t end = history_->tick();
      if (st.ok()) {
        ++reads_;
        if (auto bad = history_->check(op.offset, data, GuestHistory::read_window(start, end)))
          found("thread " + std::to_string(op.thread) + ": a read at " + std::to_string(op.offset) + "+" +
                std::to_string(op.length) + " (instants " + std::to_string(start) + " to " +
                std::to_string(end) + ") returns wrong data: " + *bad);
      }
    } else {
      id = history_->begin(op);
      switch (op.kind) {
        case GuestOpKind::write: {
          const std::vector<uint8_t> data = history_->data_of(id);
          st = guest_->write(op.offset, data, {.fua = op.fua});
          break;
        }
        case GuestOpKind::write_compressed: {
          const std::vector<uint8_t> data = history_->data_of(id);
          st = target_.write_compressed(*guest_, op.offset, data);
          break;
        }
        case GuestOpKind::write_zeroes:
          st = guest_->write_zeroes(op.offset, op.length, {.may_trim = op.may_trim, .fua = op.fua});
          break;
        case GuestOpKind::discard:
          st = guest_->discard(op.offset, op.length);
          break;
        case GuestOpKind::flush:
          st = guest_->flush();
          break;
        case GuestOpKind::read:
          break;
      }
      history_->end(id, st.ok());
    }
    if (!st.ok())
      found("operation #" + std::to_string(id) + " (thread " + std::to_string(op.thread) + " " +
            to_string(op.kind) + " " + std::to_string(op.offset) + "+" + std::to_string(op.length) +
            ") failed: " + st.error().message);
  }

  void run_threads() {
    const auto& threads = program_.threads;
#if QCOWKIT_HAVE_THREADS
    if (threads.size() > 1 && program_.order.empty()) {
      std::vector<std::thread> workers;
      // All start together: a thread started first would otherwise run much
      // of its list before the others exist.
      std::atomic<size_t> ready{0};
      for (const auto& ops : threads)
        workers.emplace_back([this, &ops, &ready, count = threads.size()] {
          ++ready;
          while (ready < count) std::this_thread::yield();
          for (const GuestOp& op : ops) {
            if (stop_) break;
            run_op(op);
          }
        });
      for (auto& w : workers) w.join();
      return;
    }
#endif
    // One at a time, interleaved as the program says.
    std::vector<size_t> next(threads.size(), 0);
    for (unsigned t : program_.order) {
      if (stop_) return;
      if (t >= threads.size() || next[t] >= threads[t].size()) continue;
      run_op(threads[t][next[t]++]);
    }
    for (size_t t = 0; t < threads.size(); ++t)
      while (next[t] < threads[t].size() && !stop_) run_op(threads[t][next[t]++]);
  }

  // Everything has completed: one more crash point, then the device must
  // read back the final reference, close cleanly and come back up exactly.
  void finish() {
    check_crash_point(CrashPoint{0, {CrashStyle::everything, CrashStyle::random_torn, CrashStyle::drop_one},
                                 program_.jitter_seed + 7},
                      "after every operation completed");
    if (stop_) return;
    std::vector<uint8_t> now(guest_size_);
    Status st = guest_->read(0, now);
    if (!st.ok()) return found("reading everything at the end: " + st.error().message);
    if (auto bad = history_->check(0, now, GuestHistory::final_window()))
      return found("at the end, the device reads wrong data: " + *bad);
    st = guest_->close();
    if (!st.ok()) return found("clean close: " + st.error().message);
    armed_ = false;
    auto back = target_.recover(memory_device_of(disk_->durable_bytes()), true);
    if (!back.ok()) return found("after a clean close: " + back.error().message);
    if (*back != now) {
      size_t at = 0;
      while (at < now.size() && at < back->size() && (*back)[at] == now[at]) ++at;
      found("after a clean close the device differs from what it read before, from byte " +
            std::to_string(at) + " (sector " + std::to_string(at / kGuestSector) + ": " +
            (at + kGuestSector <= back->size() ? identify_sector(back->data() + at / kGuestSector * kGuestSector,
                                                                 at / kGuestSector)
                                               : std::string("past the end")) + ")");
    }
  }

  ExplorerTarget& target_;
  const Program& program_;
  std::map<uint64_t, const CrashPoint*> points_;
  std::shared_ptr<RecordingDevice> disk_;
  std::shared_ptr<BlockDevice> guest_;
  uint64_t guest_size_ = 0;
  std::unique_ptr<GuestHistory> history_;
  std::atomic<bool> armed_{false}, stop_{false};
  std::atomic<uint64_t> events_{0}, flush_events_{0}, crash_points_{0}, crash_states_{0}, reads_{0};
  std::mutex finding_mutex_;
  std::optional<std::string> finding_;  // guarded by finding_mutex_
};

// A length of whole sectors, log-uniform between one sector and `max`, so
// small writes are common and big ones still happen.
uint64_t pick_length(std::mt19937_64& rng, uint64_t max) {
  const uint64_t max_sectors = std::max<uint64_t>(1, max / kGuestSector);
  unsigned bits = 0;
  while ((uint64_t{1} << (bits + 1)) <= max_sectors) ++bits;
  const uint64_t limit = std::min<uint64_t>(max_sectors, uint64_t{1} << (rng() % (bits + 1)));
  return (1 + rng() % limit) * kGuestSector;
}

}  // namespace

Program generate_program(const ExplorerConfig& config, uint64_t guest_size) {
  std::mt19937_64 rng(mix(config.seed));
  Program program;
  const uint64_t unit = std::max<uint64_t>(kGuestSector, config.unit);
  // Half the operations land in a hot region of a few units, so threads
  // collide in one cluster, one L2 table, one cache page.
  const uint64_t hot_length = std::min(guest_size, std::max<uint64_t>(4 * unit, 64u << 10) / unit * unit);
  const uint64_t hot_start = guest_size > hot_length ? (rng() % ((guest_size - hot_length) / unit + 1)) * unit : 0;
  const bool compressed = config.compressed_writes && guest_size % unit == 0;

  auto place = [&](uint64_t length, uint64_t align) {
    const bool hot = rng() % 2 == 0;
    const uint64_t base = hot ? hot_start : 0, span = hot ? hot_length : guest_size;
    length = std::min(length, span);
    const uint64_t slots = (span - length) / align + 1;
    return std::make_pair(base + (rng() % slots) * align, length);
  };

  program.threads.resize(std::max(1u, config.threads));
  for (unsigned t = 0; t < program.threads.size(); ++t) {
    for (unsigned i = 0; i < config.ops_per_thread; ++i) {
      GuestOp op;
      op.thread = t;
      const unsigned what = rng() % 100;
      if (what < 50) {
        op.kind = GuestOpKind::write;
        std::tie(op.offset, op.length) = place(pick_length(rng, config.max_length), kGuestSector);
        op.fua = rng() % 12 == 0;
      } else if (what < 70) {
        op.kind = what < 60 ? GuestOpKind::write_zeroes : GuestOpKind::discard;
        if (rng() % 2 == 0)  // whole units: metadata-only zeroing and freeing
          std::tie(op.offset, op.length) = place(unit * (1 + rng() % 4), unit);
        else
          std::tie(op.offset, op.length) = place(pick_length(rng, 4 * unit), kGuestSector);
        if (op.kind == GuestOpKind::write_zeroes) {
          op.may_trim = rng() % 2 == 0;
          op.fua = rng() % 12 == 0;
        }
      } else if (what < 80 || (what >= 92 && !compressed)) {
        op.kind = GuestOpKind::read;
        std::tie(op.offset, op.length) = place(pick_length(rng, config.max_length), kGuestSector);
      } else if (what < 92) {
        op.kind = GuestOpKind::flush;
      } else {
        op.kind = GuestOpKind::write_compressed;
        std::tie(op.offset, op.length) = place(unit, unit);
      }
      program.threads[t].push_back(op);
    }
  }
  uint64_t event = 0;
  for (unsigned i = 0; i < config.crash_points; ++i) {
    event += 1 + rng() % (2 * std::max<uint64_t>(1, config.crash_spacing));
    CrashPoint point{event, {}, rng()};
    std::vector<CrashStyle> all;
    for (int s = 0; s < kCrashStyles; ++s) all.push_back(static_cast<CrashStyle>(s));
    std::shuffle(all.begin(), all.end(), rng);
    all.resize(std::min<size_t>(all.size(), std::max(1u, config.styles_per_point)));
    point.styles = all;
    program.crash_points.push_back(point);
  }
  program.flush_crash_every = config.flush_crash_every;
  program.jitter_seed = mix(config.seed ^ 0x6a17) | 1;
  return program;
}

ExplorerReport explore(ExplorerTarget& target, std::vector<uint8_t> disk, const Program& program) {
  Run run(target, program);
  return run.go(std::move(disk));
}

std::string describe(const Program& program) {
  size_t ops = 0;
  for (const auto& t : program.threads) ops += t.size();
  std::string out = std::to_string(program.threads.size()) + " threads, " + std::to_string(ops) +
                    " operations, crash points at hook calls";
  for (const CrashPoint& p : program.crash_points) out += " " + std::to_string(p.event);
  return out;
}

}  // namespace qcowkit::testing
