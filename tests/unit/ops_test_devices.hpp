// Wrapper devices for the block-operation tests: they forward to a real
// device while counting what the operations ask of it, or while reporting
// extents chosen by the test.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "qcowkit/block_device.hpp"

namespace qcowkit::test {

// Forwards everything to `inner`, counting requests and bytes, and the most
// reads that were ever in flight at once (optionally slowed down so that
// overlapping requests can be observed).
class CountingDevice : public BlockDevice {
 public:
  explicit CountingDevice(std::shared_ptr<BlockDevice> inner,
                          std::chrono::microseconds read_delay = {})
      : inner_(std::move(inner)), read_delay_(read_delay) {}

  std::atomic<uint64_t> bytes_read{0}, bytes_written{0}, reads{0}, writes{0};
  std::atomic<uint64_t> zero_requests{0}, zero_trims{0}, zeroed_bytes{0}, flushes{0};
  std::atomic<unsigned> max_reads_in_flight{0};

  DeviceInfo info() const override { return inner_->info(); }
  Status read(uint64_t offset, ByteSpan buffer) override {
    const unsigned now = ++in_flight_;
    unsigned seen = max_reads_in_flight.load();
    while (now > seen && !max_reads_in_flight.compare_exchange_weak(seen, now)) {
    }
    if (read_delay_.count() > 0) std::this_thread::sleep_for(read_delay_);
    ++reads;
    bytes_read += buffer.size();
    Status st = inner_->read(offset, buffer);
    --in_flight_;
    return st;
  }
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override {
    ++writes;
    bytes_written += data.size();
    return inner_->write(offset, data, flags);
  }
  Status flush() override {
    ++flushes;
    return inner_->flush();
  }
  Status discard(uint64_t offset, uint64_t length) override {
    return inner_->discard(offset, length);
  }
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override {
    ++zero_requests;
    zero_trims += flags.may_trim;
    zeroed_bytes += length;
    return inner_->write_zeroes(offset, length, flags);
  }
  Status resize(uint64_t new_size) override { return inner_->resize(new_size); }
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    return inner_->extents(offset, length);
  }
  Status close() override { return inner_->close(); }

 private:
  std::shared_ptr<BlockDevice> inner_;
  std::chrono::microseconds read_delay_;
  std::atomic<unsigned> in_flight_{0};
};

// Reports the extents the test scripted (clipped to each query) instead of
// the inner device's; I/O goes to the inner device.
class ScriptedExtentsDevice : public BlockDevice {
 public:
  ScriptedExtentsDevice(std::shared_ptr<BlockDevice> inner, std::vector<Extent> script)
      : inner_(std::move(inner)), script_(std::move(script)) {}

  DeviceInfo info() const override { return inner_->info(); }
  Status read(uint64_t offset, ByteSpan buffer) override { return inner_->read(offset, buffer); }
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override {
    return inner_->write(offset, data, flags);
  }
  Status flush() override { return inner_->flush(); }
  Status discard(uint64_t offset, uint64_t length) override {
    return inner_->discard(offset, length);
  }
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override {
    return inner_->write_zeroes(offset, length, flags);
  }
  Status resize(uint64_t new_size) override { return inner_->resize(new_size); }
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    std::vector<Extent> out;
    const uint64_t end = offset + length;
    for (const Extent& e : script_) {
      const uint64_t from = std::max(offset, e.offset), to = std::min(end, e.offset + e.length);
      if (from < to) out.push_back(Extent{from, to - from, e.kind});
    }
    return out;
  }
  Status close() override { return inner_->close(); }

 private:
  std::shared_ptr<BlockDevice> inner_;
  std::vector<Extent> script_;
};

}  // namespace qcowkit::test
