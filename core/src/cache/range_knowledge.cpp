#include "cache/range_knowledge.hpp"

namespace qcowkit::cache {

void RangeKnowledge::forget(uint64_t start, uint64_t end) {
  if (start >= end) return;
  auto it = intervals_.lower_bound(start);
  // An interval starting before `start` may reach into the range.
  if (it != intervals_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > start) {
      const Interval tail = prev->second;
      prev->second.end = start;
      if (tail.end > end) {
        intervals_.emplace(end, Interval{tail.end, tail.kind});
        return;
      }
    }
  }
  while (it != intervals_.end() && it->first < end) {
    if (it->second.end > end) {
      const Interval rest = it->second;
      intervals_.erase(it);
      intervals_.emplace(end, rest);
      return;
    }
    it = intervals_.erase(it);
  }
}

void RangeKnowledge::assign(uint64_t start, uint64_t end, ExtentKind kind) {
  if (start >= end) return;
  forget(start, end);
  if (intervals_.size() >= max_intervals_) intervals_.clear();
  // Merge with neighbours of the same kind so runs stay single intervals.
  auto next = intervals_.lower_bound(end);
  if (next != intervals_.end() && next->first == end && next->second.kind == kind) {
    end = next->second.end;
    intervals_.erase(next);
  }
  auto it = intervals_.lower_bound(start);
  if (it != intervals_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end == start && prev->second.kind == kind) {
      prev->second.end = end;
      return;
    }
  }
  intervals_.emplace(start, Interval{end, kind});
}

std::optional<RangeKnowledge::Known> RangeKnowledge::at(uint64_t pos) const {
  auto it = intervals_.upper_bound(pos);
  if (it == intervals_.begin()) return std::nullopt;
  --it;
  if (it->second.end <= pos) return std::nullopt;
  return Known{it->second.end, it->second.kind};
}

uint64_t RangeKnowledge::next_known(uint64_t pos) const {
  auto it = intervals_.upper_bound(pos);
  return it == intervals_.end() ? UINT64_MAX : it->first;
}

}  // namespace qcowkit::cache
