#include "cache/cache_state.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

namespace qcowkit {

using cache::Page;
using cache::Run;

namespace {
// Enough recent drops for readers in flight; older readers simply retry.
constexpr size_t kDropLogLength = 4096;
// Device writes faster than this are issued one after another.
constexpr uint64_t kParallelWorthNs = 50'000;
// A device whose writes cost less than this beyond moving their bytes gets
// the writes a full cache has no room for directly.
constexpr uint64_t kWriteAroundNs = 50'000;
// Device write timings per window of the overhead estimate.
constexpr uint32_t kOverheadWindow = 32;
// Write-back buffers kept for reuse (all within the copy budget).
constexpr size_t kSpareRuns = 256;
}  // namespace

BlockCache::State::State(std::shared_ptr<BlockDevice> dev, const BlockCacheOptions& opts,
                         DeviceInfo info)
    : device(std::move(dev)),
      options(opts),
      page_size(opts.page_size),
      writeback_budget(std::max<uint64_t>(
          opts.page_size, std::min<uint64_t>(opts.max_size / 4, uint64_t{opts.writeback_parallelism} *
                                                                    opts.max_writeback_bytes))),
      max_pages((opts.max_size - writeback_budget) / opts.page_size),
      sector_size(info.sector_size ? info.sector_size : 1),
      read_only(info.read_only),
      buffers(opts.page_size, max_pages),
      size(info.size),
      drop_log(kDropLogLength),
      runner(opts.writeback_parallelism) {
  pages.reserve(std::min<uint64_t>(max_pages, 1u << 16));  // grows past that as pages come
}

uint64_t BlockCache::State::page_bytes(uint64_t index) const {
  const uint64_t start = page_start(index);
  if (start >= size) return 0;
  return std::min<uint64_t>(page_size, size - start);
}

Status BlockCache::State::check_locked(uint64_t offset, uint64_t length, bool mutating,
                                       const char* op) const {
  if (closed) return make_error(EBADF, std::string(op) + ": block cache is closed");
  return check_request(DeviceInfo{size, sector_size, read_only}, offset, length, mutating, op);
}

Page& BlockCache::State::insert_page_locked(uint64_t index, bool zeroed) {
  Page& page = pages[index];
  page.data = buffers.take();
  const uint64_t valid = page_bytes(index);
  std::memset(page.data + (zeroed ? 0 : valid), 0, page_size - (zeroed ? 0 : valid));
  page.order = 0;
  page.referenced = false;
  page.node = clean_list.insert(clean_list.end(), index);
  stats.cached_bytes += page_size;
  update_peak_locked();
  return page;
}

void BlockCache::State::mark_dirty_locked(uint64_t, Page& page) {
  ++page.version;
  ++mutation_epoch;
  if (page.dirty) {
    // The write-back in flight carries the bytes from before this change;
    // its order must not be lost when that write-back completes, or a flush
    // that begins now would take the page for newer than itself.
    if (page.writing && page.rewrite_order == 0) page.rewrite_order = next_order++;
    return;
  }
  dirty_list.splice(dirty_list.end(), clean_list, page.node);
  page.dirty = true;
  page.order = next_order++;
  stats.dirty_bytes += page_size;
}

void BlockCache::State::touch_locked(Page& page, uint64_t) {
  // Dirty pages age by when they became dirty; clean ones get a second chance.
  if (!page.dirty) page.referenced = true;
}

bool BlockCache::State::evict_clean_locked() {
  while (!clean_list.empty()) {
    auto it = pages.find(clean_list.front());
    if (!it->second.referenced) {
      drop_page_locked(it);
      return true;
    }
    it->second.referenced = false;
    clean_list.splice(clean_list.end(), clean_list, it->second.node);
  }
  return false;
}

std::vector<uint64_t> BlockCache::State::pages_in_locked(uint64_t first, uint64_t end) const {
  std::vector<uint64_t> out;
  if (first >= end || pages.empty()) return out;
  // A lookup per page of the range, or a walk over every slot of the
  // table, whichever is shorter. (Not the table's size: a cache that
  // writes around a fast device drains to a few pages in a table sized for
  // thousands, and walking it for each 64 KiB write cost half the speed.)
  if (end - first <= pages.slot_count()) {
    for (uint64_t index = first; index < end; ++index)
      if (pages.count(index)) out.push_back(index);
    return out;
  }
  for (const auto& [index, page] : pages)
    if (index >= first && index < end) out.push_back(index);
  std::sort(out.begin(), out.end());
  return out;
}

void BlockCache::State::drop_page_locked(PageMap::iterator it) {
  buffers.give_back(take_page_locked(it));
}

uint8_t* BlockCache::State::take_page_locked(PageMap::iterator it) {
  Page& page = it->second;
  if (page.dirty) {
    dirty_list.erase(page.node);  // pages being written back are never dropped
    stats.dirty_bytes -= page_size;
  } else {
    clean_list.erase(page.node);
  }
  stats.cached_bytes -= page_size;
  log_drop_locked(it->first, it->first + 1);
  uint8_t* data = std::exchange(page.data, nullptr);
  pages.erase(it);
  return data;
}

void BlockCache::State::drop_superseded_locked(PageMap::iterator it, uint64_t id) {
  if (!it->second.dirty) {
    drop_page_locked(it);
    return;
  }
  cache::Busy& entry = *busy_entry_locked(id);
  entry.dropped_order = std::min(entry.dropped_order, it->second.order);
  const uint64_t index = it->first, order = it->second.order;
  entry.kept.push_back(cache::Busy::Kept{index, order, take_page_locked(it)});
  ++kept_pages;
}

void BlockCache::State::requeue_dirty_locked(Page& page) {
  // Usually the newest or nearly so: look from the back.
  auto pos = dirty_list.end();
  while (pos != dirty_list.begin() && pages.at(*std::prev(pos)).order > page.order) --pos;
  dirty_list.splice(pos, writing_list, page.node);
}

void BlockCache::State::log_drop_locked(uint64_t first, uint64_t end) {
  ++drop_epoch;
  ++mutation_epoch;
  drop_log[drop_epoch % drop_log.size()] = cache::PageRange{first, end};
}

bool BlockCache::State::dropped_since_locked(uint64_t epoch, uint64_t first,
                                             uint64_t end) const {
  if (epoch == drop_epoch) return false;
  if (drop_epoch - epoch > drop_log.size()) return true;  // some drops since are overwritten
  for (uint64_t e = drop_epoch; e > epoch; --e)
    if (drop_log[e % drop_log.size()].overlaps(first, end)) return true;
  return false;
}

bool BlockCache::State::busy_locked(uint64_t first, uint64_t end) const {
  for (const cache::Busy& entry : busy)
    if (entry.range.overlaps(first, end)) return true;
  return false;
}

std::vector<cache::Busy>::iterator BlockCache::State::busy_entry_locked(uint64_t id) {
  return std::find_if(busy.begin(), busy.end(), [id](const cache::Busy& b) { return b.id == id; });
}

bool BlockCache::State::writing_in_locked(uint64_t first, uint64_t end) const {
  if (writing_list.empty()) return false;  // no write-back in flight: the usual case
  for (uint64_t index : pages_in_locked(first, end))
    if (pages.at(index).writing) return true;
  return false;
}

void BlockCache::State::update_peak_locked() {
  stats.peak_cached_bytes = std::max(stats.peak_cached_bytes, stats.cached_bytes);
  const uint64_t held = (pages_held_locked() + buffers.spare()) * page_size + writeback_bytes;
  stats.peak_memory_bytes = std::max(stats.peak_memory_bytes, held);
}

Status BlockCache::State::wait_locked(MutexLock& lock, const char* why) {
  if (in_flight == 0)
    return make_error(EDEADLK, std::string("block cache: ") + why +
                                   " waits for a write-back, but none is in flight");
  changed.wait(lock.native());
  return {};
}

Result<uint64_t> BlockCache::State::begin_busy_locked(MutexLock& lock,
                                                    uint64_t first, uint64_t end) {
  // Overlapping pass-throughs go one at a time: they change cached pages in
  // the order they take the lock, and the device must see them in that
  // order too, or a clean page and the device disagree afterwards.
  while (writing_in_locked(first, end) || busy_locked(first, end))
    QK_TRY(wait_locked(lock, "a pass-through"));
  const uint64_t id = next_busy_id++;
  cache::Busy& entry = busy.emplace_back();
  entry.id = id;
  entry.range = cache::PageRange{first, end};
  ++in_flight;
  return id;
}

void BlockCache::State::end_busy_locked(uint64_t id, bool failed) {
  auto entry = busy_entry_locked(id);
  for (cache::Busy::Kept& kept : entry->kept) {
    --kept_pages;
    // Written again meanwhile (newer, keep it), or past a shrunken end.
    if (!failed || pages.count(kept.index) || page_bytes(kept.index) == 0) {
      buffers.give_back(kept.data);
      continue;
    }
    Page& page = pages[kept.index];
    page.data = kept.data;
    page.version = 1;
    page.dirty = true;
    page.order = kept.order;
    auto pos = dirty_list.end();
    while (pos != dirty_list.begin() && pages.at(*std::prev(pos)).order > page.order) --pos;
    page.node = dirty_list.insert(pos, kept.index);
    stats.cached_bytes += page_size;
    stats.dirty_bytes += page_size;
    ++mutation_epoch;
  }
  // Order does not matter: move the last entry into its place.
  if (entry != std::prev(busy.end())) *entry = std::move(busy.back());
  busy.pop_back();
  --in_flight;
  changed.notify_all();
}

bool BlockCache::State::take_spare_run_locked(Run& run) {
  auto spare = spare_runs.find(run.size);
  if (spare == spare_runs.end()) return false;
  run.data = std::move(spare->second);
  spare_run_bytes -= spare->first;
  spare_runs.erase(spare);
  return true;
}

void BlockCache::State::keep_spare_run_locked(Run& run) {
  if (spare_runs.size() >= kSpareRuns) {
    writeback_bytes -= run.size;
    return;
  }
  spare_run_bytes += run.size;
  spare_runs.emplace(run.size, std::move(run.data));
}

void BlockCache::State::drop_spare_run_locked(SpareRuns::iterator it) {
  writeback_bytes -= it->first;
  spare_run_bytes -= it->first;
  spare_runs.erase(it);
}

void BlockCache::State::drop_spare_runs_locked() {
  while (!spare_runs.empty()) drop_spare_run_locked(spare_runs.begin());
}

Status BlockCache::State::write_back_locked(MutexLock& lock,
                                            const std::vector<uint64_t>& indexes, bool fua,
                                            std::vector<uint64_t>* written) {
  // Plan runs of adjacent pages within the copy budget. Pages that changed
  // state meanwhile are skipped; callers loop until nothing is left.
  std::vector<Run> runs;
  std::vector<uint64_t> run_bytes;
  uint64_t planned = 0;
  for (;;) {
    uint64_t previous = UINT64_MAX;
    bool eligible = false;
    for (uint64_t index : indexes) {
      auto found = pages.find(index);
      if (found == pages.end() || !found->second.dirty || found->second.writing) continue;
      // Callers chose pages that were not busy, but the copy-budget wait
      // below releases the lock: a pass-through may have claimed them since.
      if (!busy.empty() && busy_locked(index, index + 1)) continue;
      const uint64_t bytes = page_bytes(index);
      if (bytes == 0) continue;  // beyond a shrunken end: nothing to write
      eligible = true;
      // Spare buffers do not count: the runs reuse them, or they give way.
      if (writeback_bytes - spare_run_bytes + planned + bytes > writeback_budget) break;
      if (runs.empty() || index != previous + 1 ||
          run_bytes.back() + bytes > options.max_writeback_bytes) {
        runs.emplace_back();
        runs.back().first_page = index;
        run_bytes.push_back(0);
      }
      run_bytes.back() += bytes;
      runs.back().versions.push_back(0);  // filled in below
      planned += bytes;
      previous = index;
    }
    if (!runs.empty() || !eligible) break;
    QK_TRY(wait_locked(lock, "write-back (copy budget)"));
  }
  if (runs.empty()) return {};

  // Claim the pages; they are copied below without the lock, so writers
  // that reach a page being copied wait (write() checks `copying`), while
  // readers and everything else go on.
  struct Source { const uint8_t* data; uint64_t bytes; };
  std::vector<Source> sources;
  sources.reserve(planned / page_size + runs.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    Run& run = runs[r];
    for (size_t k = 0; k < run.versions.size(); ++k) {
      const uint64_t index = run.first_page + k;
      Page& page = pages.at(index);
      sources.push_back(Source{page.data, page_bytes(index)});
      run.versions[k] = page.version;
      page.writing = true;
      page.copying = true;
      writing_list.splice(writing_list.end(), dirty_list, page.node);
    }
  }
  // Runs reuse a spare buffer of their size (already counted in
  // writeback_bytes; only the same size, so the count stays the bytes
  // planned); the others get fresh memory, counted now, for which idle
  // spares give way.
  uint64_t fresh = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    runs[r].size = run_bytes[r];
    if (!take_spare_run_locked(runs[r])) fresh += run_bytes[r];
  }
  while (writeback_bytes + fresh > writeback_budget && !spare_runs.empty())
    drop_spare_run_locked(std::prev(spare_runs.end()));  // the largest first
  writeback_bytes += fresh;
  update_peak_locked();
  in_flight += runs.size();
  // Parallel write-back pays off when device writes wait (a disk, a
  // network, a slow plugin); for a device that answers in microseconds
  // handing runs to other threads costs more than the writes themselves.
  const bool parallel = runs.size() > 1 && write_latency_ns >= kParallelWorthNs;
  mutex.unlock();  // the caller's MutexLock still owns it

  size_t source = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    Run& run = runs[r];
    if (!run.data) run.data.reset(new uint8_t[run.size]);
    uint8_t* out = run.data.get();
    for (size_t k = 0; k < run.versions.size(); ++k, ++source) {
      std::memcpy(out, sources[source].data, sources[source].bytes);
      out += sources[source].bytes;
    }
  }
  mutex.lock();
  for (const Run& run : runs)
    for (size_t k = 0; k < run.versions.size(); ++k) pages.at(run.first_page + k).copying = false;
  changed.notify_all();
  mutex.unlock();  // the caller's MutexLock still owns it

  auto write_run = [&](size_t i) {
    Run& run = runs[i];
    const auto started = std::chrono::steady_clock::now();
    run.result = device->write(page_start(run.first_page), ConstByteSpan(run.data.get(), run.size),
                               WriteFlags{fua});
    run.elapsed_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::steady_clock::now() - started)
                                               .count());
  };
  if (parallel) {
    runner.run(runs.size(), write_run);
  } else {
    for (size_t i = 0; i < runs.size(); ++i) write_run(i);
  }
  mutex.lock();
  // What the device takes for one write: the fastest of the batch, each
  // timed on its own. The batch's time, or an average, would charge the
  // device for the writers' turns at the CPU and at the device's own locks
  // (16 writes in flight on 2 cores look 8 times slower than they are), and
  // the parallel write-back that this estimate chooses would keep it high.
  // Failed writes say nothing of the device's speed (an error comes back
  // at once) and would have writes sent around the cache to fail.
  uint64_t fastest = UINT64_MAX, fastest_bytes = 0;
  for (const Run& run : runs)
    if (run.result.ok() && run.elapsed_ns < fastest) fastest = run.elapsed_ns, fastest_bytes = run.size;
  if (fastest != UINT64_MAX) note_write_time_locked(fastest, fastest_bytes);
  in_flight -= runs.size();
  // Keep buffers for the next runs; they stay counted in writeback_bytes,
  // so with the copies in flight they still fit the budget.
  for (Run& run : runs) keep_spare_run_locked(run);

  Status first_error;
  for (Run& run : runs) {
    for (size_t k = 0; k < run.versions.size(); ++k) {
      const uint64_t index = run.first_page + k;
      Page& page = pages.at(index);
      page.writing = false;
      const uint64_t rewrite_order = std::exchange(page.rewrite_order, 0);
      if (!run.result.ok()) {
        // Stays dirty and keeps its age (the bytes that failed are older
        // than any rewrite): back into the list by order.
        requeue_dirty_locked(page);
      } else if (page.version == run.versions[k]) {
        page.dirty = false;
        page.referenced = false;
        clean_list.splice(clean_list.end(), writing_list, page.node);
        stats.dirty_bytes -= page_size;
      } else {
        // Rewritten meanwhile: what we wrote is on the device; the newer
        // bytes are dirty since the first write that changed them (not
        // since now: a flush begun in between must still write them).
        page.order = rewrite_order != 0 ? rewrite_order : next_order++;
        requeue_dirty_locked(page);
      }
    }
    if (run.result.ok()) {
      if (written)
        for (size_t k = 0; k < run.versions.size(); ++k) written->push_back(run.first_page + k);
      stats.bytes_written_back += run.size;
      ++stats.writeback_requests;
    } else {
      ++stats.writeback_errors;
      if (first_error.ok())
        first_error = with_context(std::move(run.result).error(),
                                   "block cache write-back of " + std::to_string(run.size) +
                                       " bytes at offset " +
                                       std::to_string(page_start(run.first_page)));
    }
  }
  changed.notify_all();
  return first_error;
}

void BlockCache::State::note_write_time_locked(uint64_t per_write_ns, uint64_t bytes_per_write) {
  write_latency_ns = (write_latency_ns * 3 + per_write_ns) / 4;
  // The overhead is the least of the recent samples: a thread that lost the
  // CPU for a while (a busy machine: 16 writers on 2 cores) makes a fast
  // device look slow for a write or two, never the other way round, while
  // a slow device never has a fast write. So one slow sample moves nothing
  // (a running average rising on each one sent every writer back into the
  // cache, hundreds of forced write-backs a second over a memory plugin),
  // and a device that turns slow is noticed within two windows of samples.
  // Half a nanosecond a byte (2 GB/s) for moving the bytes: a 1 MiB run
  // into fresh memory takes 0.3-0.5 ms on a busy machine, while a 1 ms
  // round trip stays 0.5 ms over (a whole nanosecond a byte would let it
  // pass for fast, a quarter would take memory for slow).
  const uint64_t moving = bytes_per_write / 2;
  const uint64_t overhead = per_write_ns - std::min(per_write_ns, moving);
  overhead_window_least = std::min(overhead_window_least, overhead);
  if (++overhead_window_samples == kOverheadWindow) {
    overhead_previous_least = overhead_window_least;
    overhead_window_least = UINT64_MAX;
    overhead_window_samples = 0;
  }
}

bool BlockCache::State::write_around_locked(uint64_t first, uint64_t end) const {
  const uint64_t count = end - first;
  // Full of dirty pages: no clean page to drop, and no room for the pages
  // of this write without a write-back (if none of them is held).
  const bool full_of_dirty = clean_list.empty() && pages_held_locked() + count > max_pages;
  const uint64_t held = full_of_dirty ? pages_in_locked(first, end).size() : 0;
  // A long write (an eighth of the longest write-back or more: 128 KiB by
  // default) into a cache with no room for it but by writing back: the
  // writer waits for a device write either way, and write-back could merge
  // at most a few such writes into one. Caching it would add two copies of
  // its bytes and the bookkeeping of its pages. Over a plugin adding 1 ms
  // a write, caching sequential 1 MiB writes ran at half the speed of no
  // cache at all, on 2.5 times the CPU; 128 KiB and 256 KiB writes at 0.4x
  // to 0.65x. At 64 KiB, caching and going around were even.
  const uint64_t long_write = std::max<uint64_t>(page_size, options.max_writeback_bytes / 8);
  if (full_of_dirty && count * page_size >= long_write &&
      pages_held_locked() + (count - held) > max_pages)
    return true;
  if (write_overhead_ns_locked() >= kWriteAroundNs) return false;
  // Pages the write covers that the cache holds are brought in step by
  // write_large: dropped when wholly overwritten (a dirty one's bytes are
  // superseded), given the new bytes at the edges. Taking the write into
  // them instead would cost a copy now and one at write-back.
  if (options.write_around_fast_device) return true;
  return full_of_dirty && held == 0;
}

Status BlockCache::State::make_room_locked(MutexLock& lock, uint64_t count) {
  while (pages_held_locked() + count > max_pages) {
    if (evict_clean_locked()) continue;
    // Write back the oldest dirty pages: what is needed, or a sixteenth of
    // the cache so the next writes find room too.
    const uint64_t wanted = std::max<uint64_t>(pages_held_locked() + count - max_pages,
                                               std::max<uint64_t>(1, max_pages / 16));
    std::vector<uint64_t> chosen;
    for (uint64_t index : dirty_list) {
      if (!busy.empty() && busy_locked(index, index + 1)) continue;
      chosen.push_back(index);
      if (chosen.size() >= wanted) break;
    }
    if (chosen.empty()) {
      QK_TRY(wait_locked(lock, "making room"));
      continue;
    }
    std::sort(chosen.begin(), chosen.end());
    ++stats.forced_writebacks;
    QK_TRY(write_back_locked(lock, chosen, false));
  }
  return {};
}

Status BlockCache::State::flush_dirty(uint64_t order_limit) {
  MutexLock lock(mutex);
  for (;;) {
    if (closed) return make_error(EBADF, "flush: block cache is closed");
    std::vector<uint64_t> chosen;
    // Dirty pages someone else is writing back, or that are busy, and
    // pass-throughs carrying the bytes of dirty pages they dropped.
    bool pending = false;
    for (uint64_t index : writing_list)
      if (pages.at(index).order < order_limit) { pending = true; break; }
    for (const cache::Busy& entry : busy)
      if (entry.dropped_order < order_limit) { pending = true; break; }
    for (uint64_t index : dirty_list) {
      if (pages.at(index).order >= order_limit) break;  // the list is by age
      if (!busy.empty() && busy_locked(index, index + 1))
        pending = true;
      else
        chosen.push_back(index);
    }
    if (chosen.empty()) {
      if (!pending) break;
      QK_TRY(wait_locked(lock, "flush"));
      continue;
    }
    std::sort(chosen.begin(), chosen.end());
    QK_TRY(write_back_locked(lock, chosen, false));
  }
  lock.unlock();
  return device->flush();
}

Status BlockCache::State::write_back_range_locked(MutexLock& lock,
                                                  uint64_t first, uint64_t end, bool fua,
                                                  bool& others_wrote) {
  bool first_pass = true;
  std::vector<uint64_t> ours;  // pages our own (fua) write-backs wrote
  for (;;) {
    std::vector<uint64_t> chosen;
    // A pass-through over the range may have dropped our pages, its bytes
    // superseding ours: done only once its device call is.
    bool pending = !busy.empty() && busy_locked(first, end);
    if (pending) others_wrote = true;
    uint64_t present = 0;
    for (uint64_t index : pages_in_locked(first, end)) {
      const Page& page = pages.at(index);
      ++present;
      if (!page.dirty) {
        // Clean, and not by our own write-back: someone else's (without
        // fua) carried our bytes, maybe while our own runs had the lock
        // released, so the device needs a flush before we return.
        if (first_pass || std::find(ours.begin(), ours.end(), index) == ours.end())
          others_wrote = true;
        continue;
      }
      if (page.writing) {
        pending = true;
        others_wrote = true;
      } else if (busy.empty() || !busy_locked(index, index + 1)) {
        chosen.push_back(index);  // busy ones made `pending` above
      }
    }
    // A page gone was written back and evicted, or superseded by a
    // pass-through, by someone else.
    if (present < end - first) others_wrote = true;
    first_pass = false;
    if (chosen.empty()) {
      if (!pending) return {};
      QK_TRY(wait_locked(lock, "write-through"));
      continue;
    }
    QK_TRY(write_back_locked(lock, chosen, fua, &ours));
  }
}

}  // namespace qcowkit
