// A read-only view of the first `size` bytes of another device, so two images
// of different sizes can be compared over the part they share.
#pragma once

#include <memory>

#include "qcowkit/block_device.hpp"

namespace qcowkit::cli {

class PrefixDevice final : public BlockDevice {
 public:
  PrefixDevice(std::shared_ptr<BlockDevice> inner, uint64_t size);

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override;

 private:
  std::shared_ptr<BlockDevice> inner_;
  uint64_t size_;
};

}  // namespace qcowkit::cli
