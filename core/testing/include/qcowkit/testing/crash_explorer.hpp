// The crash explorer: several guest threads issue writes, zeroes, discards,
// compressed writes, flushes and reads against one device stack over a
// RecordingDevice; at chosen device events (counted across all threads) the
// hook captures what the disk holds durably and in its volatile cache, while
// other requests are in flight, and checks crash states formed from it:
//   * the target recovers them (a qcow2 image opens, check finds no
//     corruption; leaks are allowed);
//   * every guest sector holds a value GuestHistory accepts for that instant.
// Reads during the run are checked the same way, and at the end the device
// is read whole, closed cleanly, and must come back up exactly as read, with
// no leaks.
//
// A run is a Program: each thread's operations and the crash points. It is
// generated from a seed (generate_program) or decoded by the fuzz harness.
// The threads' interleaving is the scheduler's, so a seed replays the same
// operations and crash points, not the same timing; without
// QCOWKIT_HAVE_THREADS (the browser build) the threads' operations run one
// at a time in the order the program gives.
//
// explore() is not thread-safe itself (it starts and joins its own threads).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/testing/crash_states.hpp"
#include "qcowkit/testing/explorer_targets.hpp"
#include "qcowkit/testing/guest_history.hpp"

namespace qcowkit::testing {

// At the `event`-th hook call (before and after each device operation are
// two), check the crash states of these styles.
struct CrashPoint {
  uint64_t event = 0;
  std::vector<CrashStyle> styles;
  uint64_t seed = 0;  // for the styles' random choices
};

struct Program {
  std::vector<std::vector<GuestOp>> threads;
  // Without threads: which thread's next operation runs, in turn (threads
  // not named run their remaining operations at the end, in order).
  std::vector<unsigned> order;
  std::vector<CrashPoint> crash_points;  // ascending events
  // Also a crash point just before every this-many-th device flush (the
  // moment the volatile cache holds the most), with styles picked from the
  // jitter seed. 0: none.
  unsigned flush_crash_every = 0;
  unsigned flush_crash_styles = 2;
  uint64_t jitter_seed = 0;              // 0: no pauses in device operations
};

struct ExplorerConfig {
  uint64_t seed = 1;
  unsigned threads = 4;
  unsigned ops_per_thread = 40;
  uint64_t max_length = 256u << 10;  // longest write
  uint32_t unit = 65536;             // cluster or page: many zeroes and discards cover whole units
  bool compressed_writes = false;    // the target stores compressed clusters of `unit` bytes
  unsigned crash_points = 12;
  uint64_t crash_spacing = 40;       // mean hook calls between crash points
  unsigned styles_per_point = 3;
  unsigned flush_crash_every = 5;    // see Program
};

Program generate_program(const ExplorerConfig& config, uint64_t guest_size);

struct ExplorerReport {
  uint64_t operations = 0;      // guest operations run
  uint64_t device_events = 0;   // hook calls
  uint64_t crash_points = 0;    // captures taken
  uint64_t crash_states = 0;    // crash states recovered and checked
  uint64_t reads_checked = 0;
  std::optional<std::string> finding;  // what went wrong, with the operations involved
  std::vector<uint8_t> final_disk;     // the disk after the clean close
};

ExplorerReport explore(ExplorerTarget& target, std::vector<uint8_t> disk, const Program& program);

// Short description of a program, for failure messages.
std::string describe(const Program& program);

}  // namespace qcowkit::testing
