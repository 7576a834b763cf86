#include "qcowkit/testing/recording_device.hpp"

#include <algorithm>
#include <cstring>

namespace qcowkit::testing {

const char* to_string(DeviceOp op) {
  switch (op) {
    case DeviceOp::read: return "read";
    case DeviceOp::write: return "write";
    case DeviceOp::write_zeroes: return "write_zeroes";
    case DeviceOp::discard: return "discard";
    case DeviceOp::flush: return "flush";
    case DeviceOp::resize: return "resize";
    case DeviceOp::extents: return "extents";
  }
  return "operation";
}

uint64_t atomic_pieces(const LoggedOp& op) {
  if (op.op == DeviceOp::resize || op.length == 0) return 0;
  const uint64_t first = op.offset / kAtomicSector;
  const uint64_t end = (op.offset + op.length + kAtomicSector - 1) / kAtomicSector;
  return end - first;
}

void apply_logged(std::vector<uint8_t>& bytes, const LoggedOp& op, const std::vector<bool>* sectors) {
  if (op.op == DeviceOp::resize) {
    bytes.resize(op.length, 0);
    return;
  }
  const uint64_t end = op.offset + op.length;
  // A write past the end of a crash state's bytes: the size change it relied
  // on was lost, but a file grows to hold data that did arrive.
  if (bytes.size() < end) bytes.resize(end, 0);
  const uint64_t first_piece = op.offset / kAtomicSector;
  const uint64_t pieces = atomic_pieces(op);
  for (uint64_t i = 0; i < pieces; ++i) {
    if (sectors && !(*sectors)[i]) continue;
    const uint64_t from = std::max(op.offset, (first_piece + i) * kAtomicSector);
    const uint64_t to = std::min(end, (first_piece + i + 1) * kAtomicSector);
    if (op.op == DeviceOp::write)
      std::memcpy(bytes.data() + from, op.data->data() + (from - op.offset), to - from);
    else
      std::memset(bytes.data() + from, 0, to - from);
  }
}

RecordingDevice::RecordingDevice(std::vector<uint8_t> initial, uint32_t sector_size)
    : sector_size_(sector_size ? sector_size : 1), durable_(std::move(initial)), current_(durable_) {}

void RecordingDevice::set_hook(DeviceHook hook) { hook_ = std::move(hook); }

PendingState RecordingDevice::pending() const {
  std::lock_guard lock(mutex_);
  return PendingState{durable_, log_, sequence_};
}

std::vector<uint8_t> RecordingDevice::durable_bytes() const {
  std::lock_guard lock(mutex_);
  return durable_;
}

std::vector<uint8_t> RecordingDevice::current_bytes() const {
  std::lock_guard lock(mutex_);
  return current_;
}

size_t RecordingDevice::unflushed_operations() const {
  std::lock_guard lock(mutex_);
  return log_.size();
}

uint64_t RecordingDevice::flushes() const {
  std::lock_guard lock(mutex_);
  return barriers_;
}

uint64_t RecordingDevice::operations() const {
  std::lock_guard lock(mutex_);
  return sequence_;
}

DeviceInfo RecordingDevice::info() const {
  std::lock_guard lock(mutex_);
  return DeviceInfo{current_.size(), sector_size_, false};
}

Status RecordingDevice::around(DeviceOp op, uint64_t offset, uint64_t length, bool fua,
                               const std::function<Status(uint64_t)>& body) {
  uint64_t sequence;
  {
    std::lock_guard lock(mutex_);
    sequence = ++sequence_;
  }
  DeviceEvent event{DeviceEvent::Phase::before, op, offset, length, fua, sequence, true};
  if (hook_) hook_(event);
  Status status = body(sequence);
  event.phase = DeviceEvent::Phase::after;
  event.ok = status.ok();
  if (hook_) hook_(event);
  return status;
}

// Everything logged so far reaches the durable bytes.
void RecordingDevice::barrier_locked() {
  for (const LoggedOp& op : log_) apply_logged(durable_, op);
  log_.clear();
  ++barriers_;
}

Status RecordingDevice::log_locked(LoggedOp op) {
  if (op.op == DeviceOp::resize) {
    current_.resize(op.length, 0);
  } else {
    apply_logged(current_, op);
  }
  log_.push_back(std::move(op));
  return {};
}

Status RecordingDevice::read(uint64_t offset, ByteSpan buffer) {
  return around(DeviceOp::read, offset, buffer.size(), false, [&](uint64_t) -> Status {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(EBADF, "read: recording device is closed");
    QK_TRY(check_request(DeviceInfo{current_.size(), sector_size_, false}, offset, buffer.size(),
                         false, "read"));
    std::memcpy(buffer.data(), current_.data() + offset, buffer.size());
    return {};
  });
}

Status RecordingDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  return around(DeviceOp::write, offset, data.size(), flags.fua, [&](uint64_t sequence) -> Status {
    // Copied before taking the lock: big writes should not serialize others.
    auto bytes = std::make_shared<const std::vector<uint8_t>>(data.begin(), data.end());
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(EBADF, "write: recording device is closed");
    QK_TRY(check_request(DeviceInfo{current_.size(), sector_size_, false}, offset, data.size(),
                         true, "write"));
    return log_locked(LoggedOp{DeviceOp::write, offset, data.size(), flags.fua, sequence, std::move(bytes)});
  });
}

Status RecordingDevice::flush() {
  return around(DeviceOp::flush, 0, 0, false, [&](uint64_t) -> Status {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(EBADF, "flush: recording device is closed");
    barrier_locked();
    return {};
  });
}

Status RecordingDevice::discard(uint64_t offset, uint64_t length) {
  return around(DeviceOp::discard, offset, length, false, [&](uint64_t sequence) -> Status {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(EBADF, "discard: recording device is closed");
    QK_TRY(check_request(DeviceInfo{current_.size(), sector_size_, false}, offset, length, true,
                         "discard"));
    return log_locked(LoggedOp{DeviceOp::discard, offset, length, false, sequence, nullptr});
  });
}

Status RecordingDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  return around(DeviceOp::write_zeroes, offset, length, flags.fua, [&](uint64_t sequence) -> Status {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(EBADF, "write_zeroes: recording device is closed");
    QK_TRY(check_request(DeviceInfo{current_.size(), sector_size_, false}, offset, length, true,
                         "write_zeroes"));
    return log_locked(LoggedOp{DeviceOp::write_zeroes, offset, length, flags.fua, sequence, nullptr});
  });
}

Status RecordingDevice::resize(uint64_t new_size) {
  return around(DeviceOp::resize, new_size, 0, false, [&](uint64_t sequence) -> Status {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(EBADF, "resize: recording device is closed");
    return log_locked(LoggedOp{DeviceOp::resize, 0, new_size, false, sequence, nullptr});
  });
}

Result<std::vector<Extent>> RecordingDevice::extents(uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  Status st = around(DeviceOp::extents, offset, length, false, [&](uint64_t) -> Status {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(EBADF, "extents: recording device is closed");
    QK_TRY(check_request(DeviceInfo{current_.size(), sector_size_, false}, offset, length, false,
                         "extents"));
    if (length) out.push_back(Extent{offset, length, ExtentKind::data});  // knows nothing
    return {};
  });
  if (!st.ok()) return std::move(st).error();
  return out;
}

Status RecordingDevice::close() {
  std::lock_guard lock(mutex_);
  if (closed_) return {};
  barrier_locked();
  closed_ = true;
  return {};
}

}  // namespace qcowkit::testing
