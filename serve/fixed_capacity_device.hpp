// FixedCapacityDevice: lets an image file that grows live in a device that
// cannot, such as whatever plugin lies below an nbdkit filter (NBD exports
// have one size for their whole life).
//
// The device's bytes are a file followed by room. Where the file ends is
// the caller's to say (set_file_end; until then the file is the whole
// device): the device cannot know which of its bytes an image references.
// info().size is the file's size. A resize moves the end within the
// device, never past it: growing past the device fails with ENOSPC, saying
// how large the device is. Like a file's, space gained by growing reads as
// zeroes: it is zeroed below unless it lies in the device's trailing run of
// holes and zero extents (found once, from its extents, when opened). So a
// qcow2 file given room with `truncate -s 10G disk.qcow2` can grow by 10G
// when served this way, and QEMU reads the result as an image with a zero
// tail.
//
// Ownership: shares the device below, and does not close it (close()
// flushes): its owner does. Thread safety: safe from many threads; resize
// and set_file_end are serialized, and info() sees the size before or
// after a concurrent one.
#pragma once

#include <atomic>
#include <memory>

#include "qcowkit/block_device.hpp"
#include "qcowkit/mutex.hpp"

namespace qcowkit::serve {

class FixedCapacityDevice final : public BlockDevice {
 public:
  // The file is the whole device until set_file_end; walks the device's
  // extents to learn where its zero tail begins.
  static Result<std::shared_ptr<FixedCapacityDevice>> open(std::shared_ptr<BlockDevice> below);

  uint64_t capacity() const { return below_->info().size; }
  // Says where the file ends (at most the capacity); nothing is written.
  void set_file_end(uint64_t end);

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override { return below_->flush(); }
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override { return below_->flush(); }

 private:
  FixedCapacityDevice(std::shared_ptr<BlockDevice> below, uint64_t zero_from);

  std::shared_ptr<BlockDevice> below_;
  std::atomic<uint64_t> size_;  // where the file ends
  Mutex resize_mutex_;
  uint64_t zero_from_ QK_GUARDED_BY(resize_mutex_);  // below_ reads as zeroes from here on
};

// True when every byte of `device` reads as zero (holes and zero extents
// are not read; data extents are). A zero-length device is empty too.
Result<bool> device_is_all_zero(BlockDevice& device);

}  // namespace qcowkit::serve
