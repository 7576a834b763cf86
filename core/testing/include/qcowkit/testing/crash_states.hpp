// Crash states: what a disk with a volatile write cache may hold after a
// power cut, formed from a RecordingDevice's PendingState.
//
// Between two barriers a disk may write its cache out in any order and stop
// at any point, and a write it had started may be torn: some of its 512-byte
// sectors new, the others old. So a crash state is the durable bytes plus any
// subset of the unflushed log, each chosen operation applied whole or torn,
// applied in log order (a disk never lets an older write to a sector land
// over a newer one). Operations written with fua are always kept.
//
// Pure functions of their arguments; safe to call from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qcowkit/memory_device.hpp"
#include "qcowkit/testing/recording_device.hpp"

namespace qcowkit::testing {

enum class CrashStyle : uint8_t {
  durable_only,   // the whole cache lost
  everything,     // the whole cache written out
  random_subset,  // each operation kept or lost, at random
  random_torn,    // each operation kept, lost or torn (a random set of its sectors)
  torn_prefix,    // the cache written in order up to a random point, the
                  // operation at that point torn to a prefix of its sectors
  drop_one,       // everything but one operation (the seed picks which)
};
inline constexpr int kCrashStyles = 6;
const char* to_string(CrashStyle style);

// What happened to each logged operation in one crash state.
struct CrashChoice {
  enum class Fate : uint8_t { lost, kept, torn };
  std::vector<Fate> fates;                  // one per log entry
  std::vector<std::vector<bool>> sectors;   // torn entries: which pieces survive
};

CrashChoice choose_crash(const PendingState& pending, CrashStyle style, uint64_t seed);

// The bytes on the disk after the crash.
std::vector<uint8_t> crash_bytes(const PendingState& pending, const CrashChoice& choice);

// One line naming what survived, for failure reports ("log #12 write 4096+512 kept, ...").
std::string describe(const PendingState& pending, const CrashChoice& choice, size_t max_entries = 40);

// A MemoryDevice holding `bytes` (sector size 1, as images on files have).
std::shared_ptr<MemoryDevice> memory_device_of(const std::vector<uint8_t>& bytes);

}  // namespace qcowkit::testing
