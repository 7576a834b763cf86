// GuestHistory: the reference a crash explorer checks a device against.
//
// Guest operations are recorded with the instants they started and
// completed, on one clock shared by every thread. Every data write fills
// each 512-byte sector with bytes naming the write and the sector (so a
// sector read back says where it came from), zeroes and discards fill it with
// zeroes, and each sector keeps the list of operations that covered it.
//
// What a sector may hold, given a set of operations that are "settled" (must
// have reached the medium; which ones depends on the question, see Window):
// let M be the latest start of a settled operation covering the sector.
// Acceptable are the values of the operations covering it that completed
// after M (none of them is ordered before a settled one, so a disk or the
// layers above it may have put any of them last) and that started before the
// observation ended; and the initial value when no settled operation covers
// the sector. Anything else (zeroes where a durable write was, another
// offset's data, a value ordered before a durable one) is a finding.
//
// Thread-safe: every member takes the history's mutex.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit::testing {

inline constexpr uint64_t kGuestSector = 512;
inline constexpr uint64_t kNever = UINT64_MAX;

// The bytes a data write with id `write_id` puts into guest sector `sector`.
// Never all zero; compresses well (for compressed writes).
void fill_sector(uint8_t* out, uint32_t write_id, uint64_t sector);
// Names what a sector holds: "zeroes", "write #12 (its sector 40)", "unrecognised bytes".
std::string identify_sector(const uint8_t* bytes, uint64_t sector);

enum class GuestOpKind : uint8_t { write, write_zeroes, discard, write_compressed, flush, read };
const char* to_string(GuestOpKind kind);
bool writes_data(GuestOpKind kind);     // write, write_compressed
bool changes_sectors(GuestOpKind kind); // write, write_zeroes, discard, write_compressed

struct GuestOp {
  GuestOpKind kind = GuestOpKind::write;
  uint64_t offset = 0, length = 0;  // whole sectors
  bool fua = false;
  bool may_trim = false;            // write_zeroes
  unsigned thread = 0;
};

// Which operations count as settled, and which may have been seen.
struct Window {
  uint64_t settled_before = 0;  // completed before this instant: settled
  uint64_t fua_before = 0;      // fua operations completed before this instant: settled
  uint64_t started_before = kNever;  // only operations started before this may show
};

class GuestHistory {
 public:
  explicit GuestHistory(std::vector<uint8_t> initial);

  uint64_t tick();  // a new instant, later than every one before
  // Records the start of an operation and returns its id (> 0).
  uint32_t begin(const GuestOp& op);
  void end(uint32_t id, bool ok);

  // The bytes operation `id` writes (its whole range).
  std::vector<uint8_t> data_of(uint32_t id) const;

  // For a crash state captured after instant `before` and before instant
  // `after`: settled are the operations completed before the start of a
  // flush that completed before `before`, and fua operations completed
  // before `before`.
  Window crash_window(uint64_t before, uint64_t after) const;
  // For a read that started at `start` and completed at `end`.
  static Window read_window(uint64_t start, uint64_t end) { return Window{start, start, end}; }
  // Once every operation completed: the device's final contents.
  static Window final_window() { return Window{kNever, kNever, kNever}; }

  // Checks `bytes` read at guest offset `offset` (whole sectors). Returns
  // nothing when every sector holds an acceptable value, else a report of the
  // first sector that does not (what it holds, what was acceptable, and the
  // operations that touched it).
  std::optional<std::string> check(uint64_t offset, ConstByteSpan bytes, const Window& window) const;

  // Every operation with its instants, one a line (at most `max_lines`).
  std::string dump(size_t max_lines = 400) const;
  uint64_t size() const { return initial_.size(); }
  size_t operations() const;

 private:
  struct Record {
    GuestOp op;
    uint64_t start = 0, end = kNever;
    bool ok = true;
  };
  std::string line_locked(uint32_t id) const;

  mutable std::mutex mutex_;
  const std::vector<uint8_t> initial_;
  uint64_t clock_ = 0;                       // guarded by mutex_
  std::vector<Record> records_;              // guarded by mutex_; index = id - 1
  std::vector<std::vector<uint32_t>> cover_; // guarded by mutex_; per sector, ids in start order
};

}  // namespace qcowkit::testing
