// Operations that go straight to the device: writes too large to cache or
// sent around it (write_around_locked), discard, write_zeroes and resize.
// Each one waits for write-backs of the pages it touches and for other
// pass-throughs over them, marks its page range busy (so no write-back of
// those pages starts meanwhile), brings cached pages in step, and logs the
// range as dropped so readers that read the device concurrently retry.
// Dirty pages it drops are superseded by its own device call: flushes begun
// meanwhile wait for that call, and if the call fails the pages come back
// dirty (acknowledged bytes are not lost to a failed discard).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "cache/cache_state.hpp"

namespace qcowkit {

using cache::Page;

// After a pass-through operation failed at the device, the cached pages it
// changed are the truth readers have seen: dirty, write-back makes it so.
void BlockCache::State::mark_range_pages_dirty_locked(uint64_t first, uint64_t end) {
  for (uint64_t index : pages_in_locked(first, end)) {
    auto it = pages.find(index);
    if (it != pages.end()) mark_dirty_locked(index, it->second);
  }
}

Status BlockCache::State::write_large(MutexLock& lock, uint64_t offset,
                                      ConstByteSpan data, WriteFlags flags) {
  const uint64_t end = offset + data.size();
  const uint64_t first = page_of(offset), last_end = page_of(end - 1) + 1;
  QK_ASSIGN_OR_RETURN(const uint64_t id, begin_busy_locked(lock, first, last_end));
  // Waiting for others may have let a resize or close in.
  if (Status st = check_locked(offset, data.size(), true, "write"); !st.ok()) {
    end_busy_locked(id);
    return st;
  }
  ++stats.direct_writes;
  // Pages wholly overwritten are dropped; the edge pages take the new bytes
  // and keep their state (the device gets the same bytes below).
  for (uint64_t index : pages_in_locked(first, last_end)) {
    auto it = pages.find(index);
    const uint64_t start = page_start(index);
    if (offset <= start && end >= start + page_bytes(index)) {
      drop_superseded_locked(it, id);
      continue;
    }
    const uint64_t from = std::max(offset, start), to = std::min(end, start + page_size);
    std::memcpy(it->second.data + (from - start), data.data() + (from - offset), to - from);
    ++it->second.version;
  }
  knowledge.forget(offset, end);
  log_drop_locked(first, last_end);
  mutex.unlock();  // the caller's MutexLock still owns it
  const auto started = std::chrono::steady_clock::now();
  Status st = device->write(offset, data, flags);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  mutex.lock();
  end_busy_locked(id, !st.ok());
  if (st.ok())
    note_write_time_locked(
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()),
        data.size());
  if (!st.ok()) {
    // As in zero_range: the edge pages show the new bytes the device may
    // lack; dirty, they reach it on the next write-back.
    mark_range_pages_dirty_locked(first, last_end);
    return with_context(std::move(st).error(), "block cache write-through");
  }
  return {};
}

Status BlockCache::State::zero_range(uint64_t offset, uint64_t length, bool discard,
                                     ZeroFlags flags) {
  const char* op = discard ? "discard" : "write_zeroes";
  MutexLock lock(mutex);
  QK_TRY(check_locked(offset, length, true, op));
  if (length == 0) return {};
  const uint64_t end = offset + length;
  const uint64_t first = page_of(offset), last_end = page_of(end - 1) + 1;
  if (flags.fast_only) {
    // A fast zero that fails must change nothing, so it cannot be allowed
    // to drop dirty pages first.
    for (uint64_t index : pages_in_locked(first, last_end))
      if (pages.at(index).dirty)
        return make_error(ENOTSUP, "write_zeroes: fast zero refused, the range holds cached writes");
  }
  QK_ASSIGN_OR_RETURN(const uint64_t id, begin_busy_locked(lock, first, last_end));
  for (uint64_t index : pages_in_locked(first, last_end)) {
    auto it = pages.find(index);
    const uint64_t start = page_start(index);
    if (flags.fast_only || (offset <= start && end >= start + page_bytes(index))) {
      drop_superseded_locked(it, id);
      continue;
    }
    const uint64_t from = std::max(offset, start), to = std::min(end, start + page_size);
    std::memset(it->second.data + (from - start), 0, to - from);
    ++it->second.version;
  }
  knowledge.forget(offset, end);
  log_drop_locked(first, last_end);
  const uint64_t epoch = mutation_epoch;
  lock.unlock();
  Status st = discard ? device->discard(offset, length) : device->write_zeroes(offset, length, flags);
  lock.lock();
  end_busy_locked(id, !st.ok());
  if (!st.ok()) {
    // The edge pages already read as zero there while the device may still
    // hold the old bytes: make them dirty, so write-back brings the device
    // in step with what readers of the cache have seen.
    mark_range_pages_dirty_locked(first, last_end);
    return st;
  }
  // Remember the zeroes unless a write raced with us.
  if (mutation_epoch == epoch && (!discard || options.discard_reads_zero))
    knowledge.assign(offset, end,
                     discard || flags.may_trim ? ExtentKind::hole : ExtentKind::zero);
  return {};
}

Status BlockCache::State::resize(uint64_t new_size) {
  MutexLock lock(mutex);
  if (closed) return make_error(EBADF, "resize: block cache is closed");
  if (read_only) return make_error(EROFS, "resize: device is read-only");
  if (new_size % sector_size != 0)
    return make_error(EINVAL, "resize: new size " + std::to_string(new_size) +
                                  " is not a multiple of the " + std::to_string(sector_size) +
                                  "-byte sector size");
  // Nothing may be written back across the old or new end meanwhile.
  QK_ASSIGN_OR_RETURN(const uint64_t id, begin_busy_locked(lock, 0, UINT64_MAX));
  lock.unlock();
  Status st = device->resize(new_size);
  lock.lock();
  end_busy_locked(id);
  if (!st.ok()) return st;
  if (new_size < size) {
    for (uint64_t index : pages_in_locked(page_of(new_size), UINT64_MAX)) {
      auto it = pages.find(index);
      const uint64_t start = page_start(index);
      if (start >= new_size) {
        drop_page_locked(it);
        continue;
      }
      // The page across the new end: bytes past it must read as zero if
      // the device grows again.
      std::memset(it->second.data + (new_size - start), 0, start + page_size - new_size);
      ++it->second.version;
    }
  }
  knowledge.forget(std::min(size, new_size), UINT64_MAX);
  log_drop_locked(page_of(std::min(size, new_size)), UINT64_MAX);
  size = new_size;
  return {};
}

Status BlockCache::discard(uint64_t offset, uint64_t length) {
  return state_->zero_range(offset, length, true, ZeroFlags{});
}

Status BlockCache::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  return state_->zero_range(offset, length, false, flags);
}

Status BlockCache::resize(uint64_t new_size) { return state_->resize(new_size); }

void BlockCache::advise_appends() { state_->device->advise_appends(); }

}  // namespace qcowkit
