// FixedCapacityDevice: lets an image file that grows live in a device that
// cannot, such as whatever plugin lies below an nbdkit filter (NBD exports
// have one size for their whole life).
//
// The qcow2 engine grows its file when it allocates past the end and
// shrinks it only when asked to (compact, check -r). Over this device the
// file is the whole device: info().size is the device's size, a resize
// within it succeeds without touching a byte, and a resize past it fails
// with ENOSPC saying how large the device is. A qcow2 image is happy with
// room after its last cluster (QEMU allocates into it as we do), so a
// `truncate -s 10G disk.qcow2` gives an image served this way 10G of room.
//
// Unlike a file, space gained by a resize is not zeroed: callers that need
// it to read as zeroes (creating an image) must check that it does first.
//
// Ownership: shares the device below. Thread safety: as the device below;
// this class holds no mutable state.
#pragma once

#include <memory>

#include "qcowkit/block_device.hpp"

namespace qcowkit::serve {

class FixedCapacityDevice final : public BlockDevice {
 public:
  explicit FixedCapacityDevice(std::shared_ptr<BlockDevice> below);

  DeviceInfo info() const override { return below_->info(); }
  Status read(uint64_t offset, ByteSpan buffer) override { return below_->read(offset, buffer); }
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override {
    return below_->write(offset, data, flags);
  }
  Status flush() override { return below_->flush(); }
  Status discard(uint64_t offset, uint64_t length) override { return below_->discard(offset, length); }
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override {
    return below_->write_zeroes(offset, length, flags);
  }
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    return below_->extents(offset, length);
  }
  Status close() override { return below_->close(); }

 private:
  std::shared_ptr<BlockDevice> below_;
};

// True when every byte of `device` reads as zero (holes and zero extents
// are not read; data extents are). A zero-length device is empty too.
Result<bool> device_is_all_zero(BlockDevice& device);

}  // namespace qcowkit::serve
