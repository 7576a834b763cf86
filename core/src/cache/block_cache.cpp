// BlockCache entry points: create, read, write, flush, close, statistics.
// Pass-through operations live in cache_passthrough.cpp, extents in
// cache_extents.cpp, page bookkeeping and write-back in cache_state.cpp.
#include "qcowkit/block_cache.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "cache/cache_state.hpp"

namespace qcowkit {

using cache::Page;

namespace {
// Tries at reading the device without the cache lock before a read (or a
// partial-page write) takes the lock for its device read.
constexpr int kUnlockedReadAttempts = 8;
}  // namespace

const char* to_string(CachePolicy policy) {
  switch (policy) {
    case CachePolicy::write_back: return "writeback";
    case CachePolicy::write_through: return "writethrough";
    case CachePolicy::unsafe: return "unsafe";
  }
  return "unknown";
}

const char* to_string(ExtentMode mode) {
  switch (mode) {
    case ExtentMode::passthrough: return "passthrough";
    case ExtentMode::scan: return "scan";
    case ExtentMode::off: return "off";
  }
  return "unknown";
}

Result<std::unique_ptr<BlockCache>> BlockCache::create(std::shared_ptr<BlockDevice> device,
                                                       const BlockCacheOptions& options) {
  if (!device) return make_error(EINVAL, "block cache: no device to cache");
  const DeviceInfo info = device->info();
  const uint32_t sector = info.sector_size ? info.sector_size : 1;
  const uint32_t page = options.page_size;
  if (page == 0 || (page & (page - 1)) != 0 || page > (16u << 20))
    return make_error(EINVAL, "block cache: page size " + std::to_string(page) +
                                  " is not a power of two up to 16 MiB");
  if (page % sector != 0)
    return make_error(EINVAL, "block cache: page size " + std::to_string(page) +
                                  " is not a multiple of the device's " + std::to_string(sector) +
                                  "-byte sectors");
  if (options.max_size / page < 16)
    return make_error(EINVAL, "block cache: memory bound " + std::to_string(options.max_size) +
                                  " holds fewer than 16 pages of " + std::to_string(page) +
                                  " bytes");
  if (options.extents == ExtentMode::scan &&
      (options.scan_block == 0 || options.scan_block % sector != 0 ||
       options.scan_block > (1u << 30)))
    return make_error(EINVAL, "block cache: scan block " + std::to_string(options.scan_block) +
                                  " must be a non-zero multiple of the " + std::to_string(sector) +
                                  "-byte sector size, at most 1 GiB");
  if (options.max_writeback_bytes < page)
    return make_error(EINVAL, "block cache: largest write-back " +
                                  std::to_string(options.max_writeback_bytes) +
                                  " is smaller than a page");
  auto state = std::make_unique<State>(std::move(device), options, info);
  return std::unique_ptr<BlockCache>(new BlockCache(std::move(state)));
}

BlockCache::BlockCache(std::unique_ptr<State> state) : state_(std::move(state)) {}

BlockCache::~BlockCache() {
  // A destructor cannot report errors; callers who care call close() first.
  (void)close();
}

DeviceInfo BlockCache::info() const {
  MutexLock lock(state_->mutex);
  return DeviceInfo{state_->size, state_->sector_size, state_->read_only};
}

const BlockCacheOptions& BlockCache::options() const { return state_->options; }
BlockDevice& BlockCache::device() { return *state_->device; }

BlockCacheStats BlockCache::stats() const {
  MutexLock lock(state_->mutex);
  return state_->stats;
}

Status BlockCache::read(uint64_t offset, ByteSpan buffer) {
  State& s = *state_;
  const uint64_t end = offset + buffer.size();
  MutexLock lock(s.mutex);
  QK_TRY(s.check_locked(offset, buffer.size(), false, "read"));
  if (buffer.empty()) return {};
  const uint64_t first = s.page_of(offset), last = s.page_of(end - 1);

  for (int attempt = 1;; ++attempt) {
    // Copy what the cache holds; note the byte ranges it lacks.
    struct Segment { uint64_t start, end; };
    std::vector<Segment> missing;
    for (uint64_t index = first; index <= last; ++index) {
      const uint64_t from = std::max(offset, s.page_start(index));
      const uint64_t to = std::min(end, s.page_start(index) + s.page_size);
      auto it = s.pages.find(index);
      if (it != s.pages.end()) {
        std::memcpy(buffer.data() + (from - offset),
                    it->second.data + (from - s.page_start(index)), to - from);
        s.touch_locked(it->second, index);
      } else if (!missing.empty() && missing.back().end == from) {
        missing.back().end = to;
      } else {
        missing.push_back(Segment{from, to});
      }
    }
    if (missing.empty()) {
      ++s.stats.read_hits;
      return {};
    }
    // A discard, zero or large write in flight over these pages is changing
    // the device under us, and it logged its drop before it started: a read
    // of the device now could see the old bytes without noticing. Wait for
    // it to finish, then look at the cache again.
    if (!s.busy.empty() && s.busy_locked(first, last + 1)) {
      QK_TRY(s.wait_locked(lock, "read"));
      QK_TRY(s.check_locked(offset, buffer.size(), false, "read"));
      continue;
    }
    if (!s.options.cache_reads) {
      // Nothing to keep: read the device and be done, without the lock
      // again. A page missing now holds no bytes the device lacks: dirty
      // pages are never dropped before their bytes reach the device or a
      // pass-through carrying newer ones is done (and none is in flight
      // over these pages, see above). A write that caches one of these
      // pages meanwhile is concurrent with this read, which may return
      // either bytes, as from the device itself.
      ++s.stats.read_misses;
      lock.unlock();
      for (const Segment& seg : missing)
        if (Status st = s.device->read(seg.start, buffer.subspan(seg.start - offset, seg.end - seg.start));
            !st.ok())
          return with_context(std::move(st).error(), "block cache read");
      return {};
    }
    const uint64_t epoch = s.drop_epoch;
    const uint64_t device_size = s.size;
    // Normally the device is read without the lock. A read that keeps being
    // overtaken by drops of its pages reads under the lock instead, so it
    // finishes (at the price of holding everyone else up for one read).
    const bool locked_read = attempt > kUnlockedReadAttempts;

    // Whole pages are read so they can be kept. Touches nothing the lock
    // guards.
    std::vector<std::vector<uint8_t>> whole(missing.size());
    auto read_device = [&]() -> Status {
      for (size_t i = 0; i < missing.size(); ++i) {
        const Segment& seg = missing[i];
        const uint64_t from = s.page_start(s.page_of(seg.start));
        const uint64_t to = std::min(device_size, s.page_start(s.page_of(seg.end - 1) + 1));
        whole[i].assign(to - from, 0);
        Status st = s.device->read(from, ByteSpan(whole[i]));
        if (!st.ok()) return with_context(std::move(st).error(), "block cache read");
        std::memcpy(buffer.data() + (seg.start - offset), whole[i].data() + (seg.start - from),
                    seg.end - seg.start);
      }
      return {};
    };
    Status read_status;
    if (locked_read) {
      read_status = read_device();
    } else {
      lock.unlock();
      read_status = read_device();
      lock.lock();
    }
    QK_TRY(read_status);
    if (s.closed) return make_error(EBADF, "read: block cache is closed");
    // Pages written back and dropped while we read may mean we read the
    // device before their data reached it: start again.
    if (!locked_read && s.dropped_since_locked(epoch, first, last + 1)) continue;
    ++s.stats.read_misses;
    for (size_t i = 0; i < missing.size(); ++i) {
      const Segment& seg = missing[i];
      const uint64_t seg_first = s.page_of(seg.start), seg_last = s.page_of(seg.end - 1);
      for (uint64_t index = seg_first; index <= seg_last; ++index) {
        auto it = s.pages.find(index);
        if (it != s.pages.end()) {
          // Written while we read the device: the cache has newer data.
          const uint64_t from = std::max(seg.start, s.page_start(index));
          const uint64_t to = std::min(seg.end, s.page_start(index) + s.page_size);
          std::memcpy(buffer.data() + (from - offset),
                      it->second.data + (from - s.page_start(index)), to - from);
          continue;
        }
        // Keep the clean page only if that costs no write-back.
        if (s.pages_held_locked() >= s.max_pages && !s.evict_clean_locked()) continue;
        Page& page = s.insert_page_locked(index, false);
        const uint64_t base = s.page_start(s.page_of(seg.start));
        std::memcpy(page.data, whole[i].data() + (s.page_start(index) - base),
                    s.page_bytes(index));
      }
    }
    return {};
  }
}

Status BlockCache::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  State& s = *state_;
  MutexLock lock(s.mutex);
  QK_TRY(s.check_locked(offset, data.size(), true, "write"));
  if (data.empty()) return {};
  ++s.stats.write_requests;
  if (data.size() > s.max_pages * s.page_size / 4) return s.write_large(lock, offset, data, flags);
  const uint64_t end = offset + data.size();
  const uint64_t first = s.page_of(offset), last = s.page_of(end - 1);

  // Pages only partly covered need the device's bytes around the write.
  struct Fill { std::vector<uint8_t> data; uint64_t epoch; };
  std::map<uint64_t, Fill> fills;
  auto partial = [&](uint64_t index) QK_REQUIRES(s.mutex) {
    const uint64_t start = s.page_start(index);
    return offset > start || end < start + s.page_bytes(index);
  };
  int fill_attempts = 0;
  for (;;) {
    if (s.write_around_locked(first, last + 1)) return s.write_large(lock, offset, data, flags);
    std::vector<uint64_t> need;
    for (uint64_t index : {first, last}) {
      if (!need.empty() && need.back() == index) continue;
      if (s.pages.count(index) || !partial(index)) continue;
      auto f = fills.find(index);
      if (f != fills.end() && !s.dropped_since_locked(f->second.epoch, index, index + 1)) continue;
      need.push_back(index);
    }
    if (!need.empty() && !s.busy.empty() && s.busy_locked(need.front(), need.back() + 1)) {
      // As in read(): the device bytes around the write are being changed
      // by a pass-through; read them once it is done.
      QK_TRY(s.wait_locked(lock, "write"));
      QK_TRY(s.check_locked(offset, data.size(), true, "write"));
      continue;
    }
    if (!need.empty()) {
      const uint64_t epoch = s.drop_epoch;
      const bool locked_read = ++fill_attempts > kUnlockedReadAttempts;
      // The device size may change once the lock is released (a resize
      // then logs a drop, so the fill is read again).
      std::vector<uint64_t> need_bytes;
      for (uint64_t index : need) need_bytes.push_back(s.page_bytes(index));
      auto read_fills = [&]() -> Status {  // touches nothing the lock guards
        for (size_t i = 0; i < need.size(); ++i) {
          const uint64_t index = need[i];
          Fill fill{std::vector<uint8_t>(s.page_size, 0), epoch};
          Status st = s.device->read(s.page_start(index),
                                     ByteSpan(fill.data.data(), need_bytes[i]));
          if (!st.ok())
            return with_context(std::move(st).error(), "block cache write (reading the rest of a page)");
          fills[index] = std::move(fill);
        }
        return {};
      };
      Status read_status;
      if (locked_read) {
        read_status = read_fills();
      } else {
        lock.unlock();
        read_status = read_fills();
        lock.lock();
      }
      QK_TRY(read_status);
      QK_TRY(s.check_locked(offset, data.size(), true, "write"));
      continue;
    }
    uint64_t absent = 0;
    bool copying = false;  // a write-back is copying one of our pages right now
    for (uint64_t index = first; index <= last; ++index) {
      auto it = s.pages.find(index);
      if (it == s.pages.end())
        ++absent;
      else
        copying = copying || it->second.copying;
    }
    if (copying) {
      QK_TRY(s.wait_locked(lock, "write"));
      QK_TRY(s.check_locked(offset, data.size(), true, "write"));
      continue;
    }
    if (s.pages_held_locked() + absent > s.max_pages) {
      QK_TRY(s.make_room_locked(lock, absent));
      QK_TRY(s.check_locked(offset, data.size(), true, "write"));
      continue;  // the lock was released: look again
    }
    break;
  }

  for (uint64_t index = first; index <= last; ++index) {
    auto it = s.pages.find(index);
    Page* page;
    if (it != s.pages.end()) {
      page = &it->second;
    } else {
      auto f = fills.find(index);
      page = &s.insert_page_locked(index, false);
      if (f != fills.end()) std::memcpy(page->data, f->second.data.data(), s.page_size);
    }
    const uint64_t from = std::max(offset, s.page_start(index));
    const uint64_t to = std::min(end, s.page_start(index) + s.page_size);
    std::memcpy(page->data + (from - s.page_start(index)), data.data() + (from - offset),
                to - from);
    s.mark_dirty_locked(index, *page);
  }
  s.knowledge.forget(offset, end);

  if (flags.fua || s.options.policy == CachePolicy::write_through) {
    // Without letting go of the lock: nobody may drop or write back our
    // pages unseen between the copy above and the first look below.
    bool others_wrote = false;
    QK_TRY(s.write_back_range_locked(lock, first, last + 1, flags.fua, others_wrote));
    lock.unlock();
    // Someone else's write-back or pass-through carried our data without fua.
    if (flags.fua && others_wrote) QK_TRY(s.device->flush());
  }
  return {};
}

Status BlockCache::flush() {
  State& s = *state_;
  uint64_t limit;
  {
    MutexLock lock(s.mutex);
    if (s.closed) return make_error(EBADF, "flush: block cache is closed");
    if (s.options.policy == CachePolicy::unsafe) return {};
    limit = s.next_order;
  }
  return s.flush_dirty(limit);
}

Status BlockCache::write_back_all() {
  State& s = *state_;
  uint64_t limit;
  {
    MutexLock lock(s.mutex);
    if (s.closed) return make_error(EBADF, "write-back: block cache is closed");
    limit = s.next_order;
  }
  return s.flush_dirty(limit);
}

Status BlockCache::close() {
  State& s = *state_;
  {
    MutexLock lock(s.mutex);
    if (s.closed) return {};
  }
  if (!s.read_only) QK_TRY(write_back_all());
  {
    MutexLock lock(s.mutex);
    if (s.closed) return {};
    s.closed = true;
    s.pages.clear();
    s.dirty_list.clear();
    s.writing_list.clear();
    s.clean_list.clear();
    // A pass-through still in flight may hold buffers of pages it dropped
    // (which a failure puts back): their slabs then stay until destruction.
    if (s.kept_pages == 0) s.buffers.clear();
    s.drop_spare_runs_locked();
    s.knowledge.clear();
    s.stats.cached_bytes = s.stats.dirty_bytes = 0;
  }
  // The device is shared, not owned: whoever opened it closes it (the rule
  // for every device stacked on another; see block_device.hpp).
  return {};
}

}  // namespace qcowkit
