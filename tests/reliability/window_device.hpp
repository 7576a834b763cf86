// WindowDevice: a disk with a volatile write cache, for deterministic
// ordering tests of the qcow2 engine. It keeps the durable bytes and the
// window of writes since the last barrier (flush), and lets a test look at
// the crash states of that window at every barrier: the durable bytes plus
// the window without any one of its writes. A disk may reorder freely inside
// a window, so each of those states must be a consistent image.
//
// Thread-safe; hooks run outside the device's lock, on the calling thread,
// so a hook may issue requests to the layer above.
#pragma once

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <vector>

#include "qcowkit/block_device.hpp"
#include "qcowkit/memory_device.hpp"

namespace qcowkit::reliability {

class WindowDevice final : public BlockDevice {
 public:
  struct Op {
    uint64_t offset = 0;
    std::vector<uint8_t> data;  // empty with length > 0: zeroes
    uint64_t length = 0;
    bool resize = false;  // offset is the new size
  };

  explicit WindowDevice(uint64_t size) : durable_(size, 0), current_(size, 0) {}

  // Called at each barrier, before the window becomes durable.
  std::function<void(const WindowDevice&)> on_barrier;
  // Called before each write reaches the device (offset, length).
  std::function<void(uint64_t, uint64_t)> before_write;

  uint64_t barriers() const {
    std::lock_guard lock(mutex_);
    return barriers_;
  }
  size_t window_size() const {
    std::lock_guard lock(mutex_);
    return window_.size();
  }
  // The durable bytes plus the window's writes for which keep(i) is true.
  std::shared_ptr<MemoryDevice> crash_state(const std::function<bool(size_t)>& keep) const {
    std::lock_guard lock(mutex_);
    std::vector<uint8_t> bytes = durable_;
    for (size_t i = 0; i < window_.size(); ++i)
      if (keep(i)) apply(bytes, window_[i]);
    auto dev = std::make_shared<MemoryDevice>(bytes.size());
    if (!bytes.empty()) (void)dev->write(0, bytes);
    return dev;
  }

  DeviceInfo info() const override {
    std::lock_guard lock(mutex_);
    return DeviceInfo{current_.size(), 1, false};
  }
  Status read(uint64_t offset, ByteSpan buffer) override {
    std::lock_guard lock(mutex_);
    QK_TRY(check_request(DeviceInfo{current_.size(), 1, false}, offset, buffer.size(), false, "read"));
    std::memcpy(buffer.data(), current_.data() + offset, buffer.size());
    return {};
  }
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override {
    if (before_write) before_write(offset, data.size());
    {
      std::lock_guard lock(mutex_);
      QK_TRY(check_request(DeviceInfo{current_.size(), 1, false}, offset, data.size(), true, "write"));
      Op op{offset, std::vector<uint8_t>(data.begin(), data.end()), data.size(), false};
      apply(current_, op);
      window_.push_back(std::move(op));
    }
    return flags.fua ? flush() : Status{};
  }
  Status flush() override {
    if (on_barrier) on_barrier(*this);
    std::lock_guard lock(mutex_);
    for (const Op& op : window_) apply(durable_, op);
    window_.clear();
    ++barriers_;
    return {};
  }
  Status discard(uint64_t offset, uint64_t length) override { return write_zeroes(offset, length); }
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags = {}) override {
    std::lock_guard lock(mutex_);
    QK_TRY(check_request(DeviceInfo{current_.size(), 1, false}, offset, length, true, "write_zeroes"));
    Op op{offset, {}, length, false};
    apply(current_, op);
    window_.push_back(std::move(op));
    return {};
  }
  Status resize(uint64_t new_size) override {
    std::lock_guard lock(mutex_);
    Op op{new_size, {}, 0, true};
    apply(current_, op);
    window_.push_back(std::move(op));
    return {};
  }
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    return std::vector<Extent>{Extent{offset, length, ExtentKind::data}};
  }
  Status close() override { return {}; }

 private:
  static void apply(std::vector<uint8_t>& bytes, const Op& op) {
    if (op.resize) {
      bytes.resize(op.offset, 0);
      return;
    }
    if (op.offset + op.length > bytes.size()) bytes.resize(op.offset + op.length, 0);
    if (op.data.empty())
      std::memset(bytes.data() + op.offset, 0, op.length);
    else
      std::memcpy(bytes.data() + op.offset, op.data.data(), op.length);
  }

  mutable std::mutex mutex_;
  std::vector<uint8_t> durable_, current_;
  std::vector<Op> window_;
  uint64_t barriers_ = 0;
};

}  // namespace qcowkit::reliability
