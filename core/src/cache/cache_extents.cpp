// BlockCache::extents: the device's extents, overlaid with what the cache
// knows better: dirty pages are data, ranges it zeroed or discarded are zero
// or hole, and with ExtentMode::scan, blocks read and found all zero.
#include <algorithm>
#include <string>

#include "cache/cache_state.hpp"

namespace qcowkit {

namespace {

void append(std::vector<Extent>& out, uint64_t offset, uint64_t length, ExtentKind kind) {
  if (length == 0) return;
  if (!out.empty() && out.back().kind == kind)
    out.back().length += length;
  else
    out.push_back(Extent{offset, length, kind});
}

}  // namespace

// Reads the blocks of device data extents the cache knows nothing about and
// records which are all zero. Bounded by options.scan_limit per call; returns
// how far the answer may reach (blocks past it were not scanned yet).
Result<uint64_t> BlockCache::State::scan_blocks(const std::vector<Extent>& device,
                                                uint64_t reach) {
  State& s = *this;
  const uint64_t block = s.options.scan_block;
  struct Job { uint64_t start, end; bool zero = false; Status result; };
  std::vector<Job> jobs;
  uint64_t epoch;
  {
    MutexLock lock(s.mutex);
    epoch = s.mutation_epoch;
    uint64_t budget = s.options.scan_limit;
    for (const Extent& e : device) {
      if (e.kind != ExtentKind::data) continue;
      for (uint64_t b = e.offset / block * block; b < e.offset + e.length; b += block) {
        const uint64_t end = std::min(b + block, s.size);
        auto known = s.knowledge.at(b);
        if (known && known->end >= end) continue;
        // A block with cached writes is data whatever the device holds.
        bool dirty = false;
        for (uint64_t index : s.pages_in_locked(s.page_of(b), s.page_of(end - 1) + 1))
          if (s.pages.at(index).dirty) { dirty = true; break; }
        if (dirty) continue;
        // A pass-through in flight is changing the block on the device (its
        // epoch bump came before ours): what we read could be half of it.
        if (!s.busy.empty() && s.busy_locked(s.page_of(b), s.page_of(end - 1) + 1)) continue;
        if (end - b > budget && !jobs.empty()) {
          reach = std::max(b, device.front().offset);
          goto planned;
        }
        budget -= std::min(budget, end - b);
        jobs.push_back(Job{b, end, false, Status{}});
      }
    }
  }
planned:
  s.runner.run(jobs.size(), [&](size_t i) {
    Job& job = jobs[i];
    std::vector<uint8_t> data(job.end - job.start);
    job.result = s.device->read(job.start, ByteSpan(data));
    job.zero = job.result.ok() && is_all_zero(data);
  });
  MutexLock lock(s.mutex);
  for (Job& job : jobs) {
    if (!job.result.ok())
      return with_context(std::move(job.result).error(), "block cache extent scan");
    s.stats.scanned_bytes += job.end - job.start;
  }
  // Only remember what no write could have changed since we read it.
  if (s.mutation_epoch == epoch)
    for (const Job& job : jobs)
      s.knowledge.assign(job.start, job.end, job.zero ? ExtentKind::zero : ExtentKind::data);
  return reach;
}

Result<std::vector<Extent>> BlockCache::extents(uint64_t offset, uint64_t length) {
  State& s = *state_;
  {
    MutexLock lock(s.mutex);
    QK_TRY(s.check_locked(offset, length, false, "extents"));
  }
  if (length == 0) return std::vector<Extent>{};
  if (s.options.extents == ExtentMode::off)
    return std::vector<Extent>{Extent{offset, length, ExtentKind::data}};

  QK_ASSIGN_OR_RETURN(std::vector<Extent> device, s.device->extents(offset, length));
  if (device.empty() || device.front().offset != offset)
    return make_error(EIO, "block cache: the device reported no extents at offset " +
                               std::to_string(offset));
  uint64_t reach = device.back().offset + device.back().length;
  if (s.options.extents == ExtentMode::scan) {
    QK_ASSIGN_OR_RETURN(reach, s.scan_blocks(device, reach));
  }

  MutexLock lock(s.mutex);
  reach = std::min(reach, s.size);
  std::vector<Extent> out;
  uint64_t pos = offset;
  size_t d = 0;  // device extent containing pos
  // Dirty pages in the range, ascending; `next` is the first not yet passed.
  std::vector<uint64_t> dirty;
  if (reach > offset)
    for (uint64_t index : s.pages_in_locked(s.page_of(offset), s.page_of(reach - 1) + 1))
      if (s.pages.at(index).dirty) dirty.push_back(index);
  size_t next = 0;
  while (pos < reach) {
    while (d < device.size() && device[d].offset + device[d].length <= pos) ++d;
    if (d == device.size()) break;
    while (next < dirty.size() && s.page_start(dirty[next] + 1) <= pos) ++next;
    const uint64_t dirty_start =
        next < dirty.size() ? std::max(pos, s.page_start(dirty[next])) : UINT64_MAX;
    if (dirty_start == pos) {
      // A run of adjacent dirty pages is data.
      uint64_t index = dirty[next];
      while (next + 1 < dirty.size() && dirty[next + 1] == index + 1) index = dirty[++next];
      const uint64_t to = std::min(reach, s.page_start(index + 1));
      append(out, pos, to - pos, ExtentKind::data);
      pos = to;
      continue;
    }
    uint64_t to = std::min({reach, dirty_start, device[d].offset + device[d].length});
    ExtentKind kind = device[d].kind;
    if (auto known = s.knowledge.at(pos)) {
      kind = known->kind;
      to = std::min(to, known->end);
    } else {
      to = std::min(to, s.knowledge.next_known(pos));
    }
    append(out, pos, to - pos, kind);
    pos = to;
  }
  if (out.empty()) return make_error(EIO, "block cache: no extents at offset " + std::to_string(offset));
  return out;
}

}  // namespace qcowkit
