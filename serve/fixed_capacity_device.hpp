// FixedCapacityDevice: lets an image file that grows live in a device that
// cannot, such as whatever plugin lies below an nbdkit filter (NBD exports
// have one size for their whole life).
//
// The device's bytes are a file followed by room: the file ends where the
// device's trailing run of holes and zero extents begins (found once, from
// the device's extents, when opened), and info().size is the file's size.
// A resize moves the end within the device, never past it: growing past
// the device fails with ENOSPC, saying how large the device is. Like a
// file's, space gained by growing reads as zeroes (it is zeroed below when
// it is not known to be zero already). So a qcow2 file given room with
// `truncate -s 10G disk.qcow2` (a sparse tail) can grow by 10G when served
// this way, and QEMU reads the result as an image with a zero tail.
//
// A device that reports no extents, or a tail that is written zeroes
// rather than holes, leaves no room (the file is the whole device); that
// only matters for writing.
//
// Ownership: shares the device below. Thread safety: safe from many
// threads; resize is serialized, and info() sees the size before or after
// a concurrent resize.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "qcowkit/block_device.hpp"

namespace qcowkit::serve {

class FixedCapacityDevice final : public BlockDevice {
 public:
  // Finds where the file ends in `below` (walking its extents).
  static Result<std::shared_ptr<FixedCapacityDevice>> open(std::shared_ptr<BlockDevice> below);

  uint64_t capacity() const { return below_->info().size; }

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override { return below_->flush(); }
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override { return below_->close(); }

 private:
  FixedCapacityDevice(std::shared_ptr<BlockDevice> below, uint64_t end);

  std::shared_ptr<BlockDevice> below_;
  std::atomic<uint64_t> size_;  // where the file ends
  std::mutex resize_mutex_;
  uint64_t zero_from_;          // below_ reads as zeroes from here on (guarded by resize_mutex_)
};

// True when every byte of `device` reads as zero (holes and zero extents
// are not read; data extents are). A zero-length device is empty too.
Result<bool> device_is_all_zero(BlockDevice& device);

}  // namespace qcowkit::serve
