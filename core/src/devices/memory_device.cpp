#include "qcowkit/memory_device.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace qcowkit {

MemoryDevice::MemoryDevice(uint64_t size, uint32_t sector_size, bool read_only)
    : size_(size), sector_size_(sector_size ? sector_size : 1), read_only_(read_only) {}

DeviceInfo MemoryDevice::info() const {
  std::shared_lock lock(mutex_);
  return DeviceInfo{size_, sector_size_, read_only_};
}

Status MemoryDevice::check_locked(uint64_t offset, uint64_t length, bool mutating,
                                  const char* op) const {
  if (closed_) return make_error(EBADF, std::string(op) + ": memory device is closed");
  return check_request(DeviceInfo{size_, sector_size_, read_only_}, offset, length, mutating, op);
}

Status MemoryDevice::read(uint64_t offset, ByteSpan buffer) {
  std::shared_lock lock(mutex_);
  QK_TRY(check_locked(offset, buffer.size(), false, "read"));
  size_t done = 0;
  while (done < buffer.size()) {
    const uint64_t pos = offset + done;
    const uint64_t in_chunk = pos % kChunkSize;
    const size_t n = std::min<uint64_t>(kChunkSize - in_chunk, buffer.size() - done);
    auto it = chunks_.find(pos / kChunkSize);
    if (it == chunks_.end())
      std::memset(buffer.data() + done, 0, n);
    else
      std::memcpy(buffer.data() + done, it->second.get() + in_chunk, n);
    done += n;
  }
  return {};
}

Status MemoryDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags) {
  std::unique_lock lock(mutex_);
  QK_TRY(check_locked(offset, data.size(), true, "write"));
  size_t done = 0;
  while (done < data.size()) {
    const uint64_t pos = offset + done;
    const uint64_t in_chunk = pos % kChunkSize;
    const size_t n = std::min<uint64_t>(kChunkSize - in_chunk, data.size() - done);
    Chunk& chunk = chunks_[pos / kChunkSize];
    if (!chunk) {
      chunk.reset(new uint8_t[kChunkSize]);
      std::memset(chunk.get(), 0, kChunkSize);
    }
    std::memcpy(chunk.get() + in_chunk, data.data() + done, n);
    done += n;
  }
  return {};
}

Status MemoryDevice::flush() {
  std::shared_lock lock(mutex_);
  if (closed_) return make_error(EBADF, "flush: memory device is closed");
  return {};
}

// Whole chunks are released; partial ones are cleared in place.
void MemoryDevice::zero_range_locked(uint64_t offset, uint64_t length) {
  const uint64_t end = offset + length;
  auto it = chunks_.lower_bound(offset / kChunkSize);
  while (it != chunks_.end() && it->first * kChunkSize < end) {
    const uint64_t chunk_start = it->first * kChunkSize;
    const uint64_t from = std::max(offset, chunk_start);
    const uint64_t to = std::min(end, chunk_start + kChunkSize);
    if (from == chunk_start && to == chunk_start + kChunkSize) {
      it = chunks_.erase(it);
    } else {
      std::memset(it->second.get() + (from - chunk_start), 0, to - from);
      ++it;
    }
  }
}

Status MemoryDevice::discard(uint64_t offset, uint64_t length) {
  std::unique_lock lock(mutex_);
  QK_TRY(check_locked(offset, length, true, "discard"));
  zero_range_locked(offset, length);
  return {};
}

Status MemoryDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags) {
  std::unique_lock lock(mutex_);
  QK_TRY(check_locked(offset, length, true, "write_zeroes"));
  zero_range_locked(offset, length);
  return {};
}

Status MemoryDevice::resize(uint64_t new_size) {
  std::unique_lock lock(mutex_);
  if (closed_) return make_error(EBADF, "resize: memory device is closed");
  if (read_only_) return make_error(EROFS, "resize: device is read-only");
  if (new_size % sector_size_ != 0)
    return make_error(EINVAL, "resize: new size " + std::to_string(new_size) +
                                  " is not a multiple of the sector size");
  if (new_size < size_) zero_range_locked(new_size, size_ - new_size);
  size_ = new_size;
  return {};
}

Result<std::vector<Extent>> MemoryDevice::extents(uint64_t offset, uint64_t length) {
  std::shared_lock lock(mutex_);
  QK_TRY(check_locked(offset, length, false, "extents"));
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  auto add = [&out](uint64_t off, uint64_t len, ExtentKind kind) {
    if (len == 0) return;
    if (!out.empty() && out.back().kind == kind)
      out.back().length += len;
    else
      out.push_back(Extent{off, len, kind});
  };
  uint64_t pos = offset;
  for (auto it = chunks_.lower_bound(offset / kChunkSize);
       it != chunks_.end() && pos < end; ++it) {
    const uint64_t chunk_start = it->first * kChunkSize;
    if (chunk_start >= end) break;
    if (chunk_start > pos) {
      add(pos, chunk_start - pos, ExtentKind::hole);
      pos = chunk_start;
    }
    const uint64_t to = std::min(end, chunk_start + kChunkSize);
    add(pos, to - pos, ExtentKind::data);
    pos = to;
  }
  add(pos, end - pos, ExtentKind::hole);
  return out;
}

Status MemoryDevice::close() {
  std::unique_lock lock(mutex_);
  closed_ = true;
  chunks_.clear();
  return {};
}

uint64_t MemoryDevice::allocated_bytes() const {
  std::shared_lock lock(mutex_);
  return chunks_.size() * uint64_t{kChunkSize};
}

}  // namespace qcowkit
