// The shared state behind a BlockCache and the page bookkeeping every entry
// point uses. All members are guarded by `mutex`; functions named *_locked
// expect it held. Device I/O always happens with the mutex released.
//
// Invariants:
//  * a page is on exactly one of the lists dirty_list (dirty, idle, by
//    age), writing_list (dirty, being written back) or clean_list (clean,
//    least recently used first); moving between them is a splice, O(1);
//  * a page being written back is never dropped: whoever wants to drop it
//    waits on `changed` first;
//  * page buffers held (pages, those pass-throughs keep, spare ones in
//    `buffers`) never exceed max_pages,
//    and write-back copies (in flight plus spare_runs) never exceed
//    writeback_budget, so all of it stays within options.max_size;
//  * every time pages leave the cache or the device changes underneath
//    them (discard, zero, large write, resize), drop_log records the page
//    range, so a reader that read the device meanwhile knows to retry.
//
// Durability (what flush() relies on): every change the device does not
// have yet carries an order number no older than the order it was made at.
// An idle dirty page's `order` is its oldest such change. A page being
// written back has two: `order` for the bytes in flight, and
// `rewrite_order` for its first change after the copy was taken, which
// becomes its `order` when the write-back succeeds. A pass-through that
// drops dirty pages (their bytes superseded by its own) keeps the oldest of
// their orders in its busy entry until its device call is done. So a flush
// whose cut-off is the next order when it began is done exactly when no
// dirty page, write-back or pass-through holds an order below the cut-off.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <vector>

#include "cache/page_buffers.hpp"
#include "cache/page_table.hpp"
#include "cache/parallel_runner.hpp"
#include "cache/range_knowledge.hpp"
#include "qcowkit/block_cache.hpp"
#include "qcowkit/mutex.hpp"

namespace qcowkit {

namespace cache {

struct Page {
  uint8_t* data = nullptr;          // page_size bytes from State::buffers; bytes past the device end are zero
  uint64_t version = 0;             // bumped by every change to data
  uint64_t order = 0;               // when it became dirty (dirty pages' age)
  // While writing: when the data first changed after the write-back copied
  // it (0: not since). The page's age once that write-back succeeds.
  uint64_t rewrite_order = 0;
  std::list<uint64_t>::iterator node;  // its entry in one of the three lists
  bool dirty = false;
  bool writing = false;             // a write-back of this page is in flight
  bool copying = false;             // write-back is copying data (writers wait)
  bool referenced = false;          // clean page read since it was last passed over
};

struct PageRange {
  uint64_t first = 0, end = 0;  // page indexes, end exclusive
  bool overlaps(uint64_t f, uint64_t e) const { return first < e && f < end; }
};

// A pass-through in flight.
struct Busy {
  uint64_t id = 0;  // from next_busy_id, for end_busy_locked
  PageRange range;
  // The oldest order of the dirty pages it dropped (their bytes reach the
  // device only as its own, once its device call is done); UINT64_MAX: none.
  uint64_t dropped_order = UINT64_MAX;
  // Those pages' buffers, until the device call is done: if it fails they
  // come back dirty (unless written again meanwhile), since the device may
  // hold neither their bytes nor the pass-through's. Counted as held pages.
  struct Kept {
    uint64_t index, order;
    uint8_t* data;  // from State::buffers
  };
  std::vector<Kept> kept;
};

// One coalesced device write during write-back.
struct Run {
  uint64_t first_page = 0;
  std::vector<uint64_t> versions;  // of each page when it was copied
  std::unique_ptr<uint8_t[]> data;  // the copy, size bytes (a fresh or a spare buffer, overwritten)
  uint64_t size = 0;
  Status result;
  uint64_t elapsed_ns = 0;          // of the device write
};

}  // namespace cache

struct BlockCache::State {
  State(std::shared_ptr<BlockDevice> dev, const BlockCacheOptions& opts, DeviceInfo info);

  std::shared_ptr<BlockDevice> device;
  BlockCacheOptions options;
  uint32_t page_size;
  uint64_t writeback_budget;  // bytes reserved for write-back copies
  uint64_t max_pages;         // pages that fit in the rest of max_size
  uint64_t writeback_bytes QK_GUARDED_BY(mutex) = 0;  // held by write-back copies (in flight and spare_runs)
  // Run buffers kept for reuse, by size: write-back would otherwise
  // fault in fresh memory for every run (and the allocator hand it back to
  // the system after), a sixth of the filter's time under random writes.
  using SpareRuns = std::multimap<uint64_t, std::unique_ptr<uint8_t[]>>;
  SpareRuns spare_runs QK_GUARDED_BY(mutex);
  uint64_t spare_run_bytes QK_GUARDED_BY(mutex) = 0;  // their sizes, summed
  // Gives `run` a spare buffer of exactly run.size bytes, if one is kept;
  // its bytes stay counted in writeback_bytes, now for the run.
  bool take_spare_run_locked(cache::Run& run) QK_REQUIRES(mutex);
  // Keeps the buffer of a finished run for reuse, still counted in
  // writeback_bytes, or, when kSpareRuns are kept already, lets it go
  // with its bytes.
  void keep_spare_run_locked(cache::Run& run) QK_REQUIRES(mutex);
  // Frees one spare run buffer, and the bytes it held in writeback_bytes.
  void drop_spare_run_locked(SpareRuns::iterator it) QK_REQUIRES(mutex);
  // Frees every spare run buffer.
  void drop_spare_runs_locked() QK_REQUIRES(mutex);
  // Moving average of one device write during write-back; starts high so
  // the first rounds go in parallel and measure.
  uint64_t write_latency_ns QK_GUARDED_BY(mutex) = 1'000'000;
  // What one device write costs beyond moving its bytes (its time less a
  // half a nanosecond a byte): the round trip of a network, a disk or a slow
  // plugin. The least that the recent write-backs and pass-throughs
  // measured (this window of samples and the one before); starts high, as
  // if the device were slow.
  uint64_t write_overhead_ns_locked() const QK_REQUIRES(mutex) {
    return std::min(overhead_previous_least, overhead_window_least);
  }
  uint64_t overhead_window_least QK_GUARDED_BY(mutex) = UINT64_MAX;  // this window's samples
  uint64_t overhead_previous_least QK_GUARDED_BY(mutex) = 1'000'000;  // the window before
  uint32_t overhead_window_samples QK_GUARDED_BY(mutex) = 0;
  uint32_t sector_size;
  bool read_only;

  mutable Mutex mutex;
  std::condition_variable changed;  // a write-back or a pass-through finished

  using PageMap = cache::PageTable<cache::Page>;
  PageMap pages QK_GUARDED_BY(mutex);  // page index -> page (lookups are the hot path)
  std::list<uint64_t> dirty_list QK_GUARDED_BY(mutex);    // page indexes, oldest dirty first (ascending order)
  std::list<uint64_t> writing_list QK_GUARDED_BY(mutex);  // page indexes being written back
  // Clean pages, oldest first; a page read since it was last considered
  // gets a second chance (CLOCK), so hits cost no reordering.
  std::list<uint64_t> clean_list QK_GUARDED_BY(mutex);
  // Every page's data buffer, and those of dropped pages, for reuse.
  cache::PageBuffers buffers QK_GUARDED_BY(mutex);
  uint64_t next_order QK_GUARDED_BY(mutex) = 1;
  uint64_t size QK_GUARDED_BY(mutex);
  bool closed QK_GUARDED_BY(mutex) = false;

  uint64_t in_flight QK_GUARDED_BY(mutex) = 0;                // write-back runs and pass-throughs running
  // The pass-throughs in flight, in no order. A handful at most (one per
  // request thread), taken and scanned under the lock on every write that
  // goes around the cache: a flat array allocates nothing per entry and
  // chases no pointers, where a tree did both.
  std::vector<cache::Busy> busy QK_GUARDED_BY(mutex);
  uint64_t next_busy_id QK_GUARDED_BY(mutex) = 1;
  uint64_t kept_pages QK_GUARDED_BY(mutex) = 0;               // buffers in busy entries' `kept`
  uint64_t mutation_epoch QK_GUARDED_BY(mutex) = 0;           // bumped by every change to contents
  uint64_t drop_epoch QK_GUARDED_BY(mutex) = 0;
  // The page ranges of the most recent drops: drop number e (counted by
  // drop_epoch) is at drop_log[e % its size], once drop_epoch is past it.
  // A ring rather than a queue: every write around the cache logs a drop
  // under the lock, and a queue's pop and block allocations cost more than
  // the rest of that write's bookkeeping.
  std::vector<cache::PageRange> drop_log QK_GUARDED_BY(mutex);

  cache::RangeKnowledge knowledge QK_GUARDED_BY(mutex);
  BlockCacheStats stats QK_GUARDED_BY(mutex);
  cache::ParallelRunner runner;

  // Geometry.
  uint64_t page_of(uint64_t offset) const { return offset / page_size; }
  uint64_t page_start(uint64_t index) const { return index * page_size; }
  // Bytes of the page that lie inside the device.
  uint64_t page_bytes(uint64_t index) const QK_REQUIRES(mutex);

  Status check_locked(uint64_t offset, uint64_t length, bool mutating, const char* op) const QK_REQUIRES(mutex);

  // Bookkeeping.
  // A new clean page; its data is zero only when `zeroed`, else it holds
  // garbage the caller overwrites (bytes past the device end are zeroed).
  cache::Page& insert_page_locked(uint64_t index, bool zeroed) QK_REQUIRES(mutex);
  // Drops the least recently used clean page; false when there is none.
  bool evict_clean_locked() QK_REQUIRES(mutex);
  void mark_dirty_locked(uint64_t index, cache::Page& page) QK_REQUIRES(mutex);
  void mark_range_pages_dirty_locked(uint64_t first, uint64_t end) QK_REQUIRES(mutex);
  void touch_locked(cache::Page& page, uint64_t index) QK_REQUIRES(mutex);
  void drop_page_locked(PageMap::iterator it) QK_REQUIRES(mutex);
  // Removes a page from the cache and hands over its buffer.
  uint8_t* take_page_locked(PageMap::iterator it) QK_REQUIRES(mutex);
  // Page buffers held: cached pages and those kept by pass-throughs (the
  // number max_pages bounds, with the spare buffers).
  uint64_t pages_held_locked() const QK_REQUIRES(mutex) { return pages.size() + kept_pages; }
  // Drops a page a pass-through (busy entry `id`) supersedes, noting the age
  // of a dirty one in the entry so flushes wait for the device call.
  void drop_superseded_locked(PageMap::iterator it, uint64_t id) QK_REQUIRES(mutex);
  // Puts a page that stays dirty back on dirty_list, at its place by order.
  void requeue_dirty_locked(cache::Page& page) QK_REQUIRES(mutex);
  // Indexes of the cached pages in [first, end), ascending.
  std::vector<uint64_t> pages_in_locked(uint64_t first, uint64_t end) const QK_REQUIRES(mutex);
  void log_drop_locked(uint64_t first, uint64_t end) QK_REQUIRES(mutex);
  bool dropped_since_locked(uint64_t epoch, uint64_t first, uint64_t end) const QK_REQUIRES(mutex);
  bool busy_locked(uint64_t first, uint64_t end) const QK_REQUIRES(mutex);
  // The busy entry of a pass-through in flight.
  std::vector<cache::Busy>::iterator busy_entry_locked(uint64_t id) QK_REQUIRES(mutex);
  bool writing_in_locked(uint64_t first, uint64_t end) const QK_REQUIRES(mutex);
  void update_peak_locked() QK_REQUIRES(mutex);

  // Blocks on `changed` until something in flight finishes. Fails instead
  // of waiting forever when nothing is in flight (which would be a bug).
  Status wait_locked(MutexLock& lock, const char* why) QK_REQUIRES(mutex);
  // Waits until no page of [first, end) is being written back or busy with
  // another pass-through, then marks the range busy; returns its id for
  // end_busy_locked.
  Result<uint64_t> begin_busy_locked(MutexLock& lock, uint64_t first,
                                     uint64_t end) QK_REQUIRES(mutex);
  // Ends a pass-through: with `failed`, the dirty pages it dropped come back.
  void end_busy_locked(uint64_t id, bool failed = false) QK_REQUIRES(mutex);

  // Writes back the given dirty, idle pages (ascending indexes), coalesced,
  // several runs in flight. Releases the lock during the I/O. It may write
  // only some of them (the copy budget); `written`, when given, receives
  // the pages whose bytes it wrote successfully.
  Status write_back_locked(MutexLock& lock,
                           const std::vector<uint64_t>& indexes, bool fua,
                           std::vector<uint64_t>* written = nullptr) QK_REQUIRES(mutex);
  // Folds the time one device write of `bytes_per_write` bytes took into
  // the averages above.
  void note_write_time_locked(uint64_t per_write_ns, uint64_t bytes_per_write) QK_REQUIRES(mutex);
  // Whether a write of pages [first, end) should go straight to the device
  // (write_large) rather than into the cache: the device answers about as
  // fast as memory, and either options.write_around_fast_device is set or
  // the cache is full of dirty pages and none of these pages is cached.
  // Caching the write (and, when full, writing back older pages to make
  // room) would cost two more copies of as many bytes for nothing: there is
  // no round trip to hide and nothing to coalesce that the device would not
  // take as fast. Also, over any device, a write of at least an eighth of
  // options.max_writeback_bytes that finds no room without a write-back.
  bool write_around_locked(uint64_t first, uint64_t end) const QK_REQUIRES(mutex);
  // Makes room for `count` more pages: drops clean pages, then writes back
  // the oldest dirty ones.
  Status make_room_locked(MutexLock& lock, uint64_t count) QK_REQUIRES(mutex);
  // Writes back every page dirty since before `order_limit`, then flushes.
  Status flush_dirty(uint64_t order_limit);
  // Writes back the pages of [first, end) (waiting for write-backs and
  // pass-throughs others started); sets `others_wrote` when some page's
  // bytes reached the device by someone else's hand (a write-back without
  // fua, or a pass-through that superseded them): the caller flushes then.
  Status write_back_range_locked(MutexLock& lock, uint64_t first,
                                 uint64_t end, bool fua, bool& others_wrote) QK_REQUIRES(mutex);

  // Pass-throughs (cache_passthrough.cpp): change the device directly,
  // keeping cached pages in step.
  // write_large expects the lock held and the request checked; it returns
  // with the lock held.
  Status write_large(MutexLock& lock, uint64_t offset, ConstByteSpan data,
                     WriteFlags flags) QK_REQUIRES(mutex);
  Status zero_range(uint64_t offset, uint64_t length, bool discard, ZeroFlags flags);
  Status resize(uint64_t new_size);

  // ExtentMode::scan (cache_extents.cpp): reads unknown blocks of the
  // device's data extents, remembers which are all zero, and returns how far
  // the answer may reach within the scan budget.
  Result<uint64_t> scan_blocks(const std::vector<Extent>& device, uint64_t reach);
};

}  // namespace qcowkit
