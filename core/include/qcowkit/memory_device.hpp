// MemoryDevice: a sparse in-memory BlockDevice. Memory is spent only on
// chunks that were written with data, so an empty 1 TiB device costs nothing;
// discarding or zeroing whole chunks gives their memory back.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

class MemoryDevice final : public BlockDevice {
 public:
  static constexpr uint32_t kChunkSize = 64 * 1024;

  explicit MemoryDevice(uint64_t size, uint32_t sector_size = 1, bool read_only = false);

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override;

  // Bytes of chunk storage currently held (for tests of sparseness).
  uint64_t allocated_bytes() const;

 private:
  using Chunk = std::unique_ptr<uint8_t[]>;
  void zero_range_locked(uint64_t offset, uint64_t length);
  Status check_locked(uint64_t offset, uint64_t length, bool mutating, const char* op) const;

  mutable std::shared_mutex mutex_;
  std::map<uint64_t, Chunk> chunks_;  // chunk index -> kChunkSize bytes
  uint64_t size_;
  uint32_t sector_size_;
  bool read_only_;
  bool closed_ = false;
};

}  // namespace qcowkit
