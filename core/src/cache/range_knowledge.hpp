// RangeKnowledge: what the cache has learnt about ranges of the device
// beneath it, kept as non-overlapping intervals: "reads as zero" (it zeroed
// or discarded the range, or a scan found zeroes) or "holds data" (a scan
// found non-zero bytes). Anything a write touches is forgotten.
//
// It is a hint for extent queries, never the only copy of anything, so it
// can be bounded by simply forgetting everything when it grows too large
// (65536 intervals, a few MiB, by default).
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "qcowkit/block_device.hpp"

namespace qcowkit::cache {

class RangeKnowledge {
 public:
  explicit RangeKnowledge(size_t max_intervals = 1u << 16) : max_intervals_(max_intervals) {}

  // Records that [start, end) is of `kind`, replacing what was known there.
  void assign(uint64_t start, uint64_t end, ExtentKind kind);
  // Forgets [start, end).
  void forget(uint64_t start, uint64_t end);
  void clear() { intervals_.clear(); }

  struct Known {
    uint64_t end;  // the kind holds from the queried position up to here
    ExtentKind kind;
  };
  // What is known at `pos`, if anything.
  std::optional<Known> at(uint64_t pos) const;
  // The start of the first known interval after `pos` (or UINT64_MAX).
  uint64_t next_known(uint64_t pos) const;

  size_t intervals() const { return intervals_.size(); }

 private:
  struct Interval {
    uint64_t end;
    ExtentKind kind;
  };
  std::map<uint64_t, Interval> intervals_;  // start -> interval
  size_t max_intervals_;
};

}  // namespace qcowkit::cache
