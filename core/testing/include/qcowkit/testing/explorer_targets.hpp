// What a crash explorer can drive: a device stack built over a
// RecordingDevice, and how a crash state of that disk is brought back up.
//
// Targets hold only options; every call builds its own objects, so one target
// may be used from several threads at once (crash states are checked on
// whichever thread hit the crash point).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qcowkit/block_cache.hpp"
#include "qcowkit/qcow2.hpp"
#include "qcowkit/testing/crash_states.hpp"

namespace qcowkit::testing {

class ExplorerTarget {
 public:
  virtual ~ExplorerTarget() = default;
  // The guest device over `disk`; closing it closes the disk.
  virtual Result<std::shared_ptr<BlockDevice>> open(std::shared_ptr<BlockDevice> disk) = 0;
  // Brings a disk up as a reboot would and returns every guest byte. An
  // error (the image does not open, check finds corruption, or with `clean`
  // leaks too) is a finding.
  virtual Result<std::vector<uint8_t>> recover(std::shared_ptr<MemoryDevice> disk, bool clean) = 0;
  // Stores one cluster compressed; ENOTSUP where the guest cannot.
  virtual Status write_compressed(BlockDevice& guest, uint64_t offset, ConstByteSpan data);
  // The sector size of the disk recorded under this target: 1, unless the
  // target stands for a device that takes whole sectors only.
  virtual uint32_t disk_sector_size() const { return 1; }
};

// A qcow2 image straight on the disk.
class Qcow2Target : public ExplorerTarget {
 public:
  explicit Qcow2Target(Qcow2OpenOptions options = {}) : options_(std::move(options)) {}
  Result<std::shared_ptr<BlockDevice>> open(std::shared_ptr<BlockDevice> disk) override;
  Result<std::vector<uint8_t>> recover(std::shared_ptr<MemoryDevice> disk, bool clean) override;
  Status write_compressed(BlockDevice& guest, uint64_t offset, ConstByteSpan data) override;

 protected:
  Qcow2OpenOptions options_;
};

// A BlockCache over the disk: the guest's bytes are the disk's bytes.
class CacheTarget final : public ExplorerTarget {
 public:
  explicit CacheTarget(BlockCacheOptions options) : options_(options) {}
  Result<std::shared_ptr<BlockDevice>> open(std::shared_ptr<BlockDevice> disk) override;
  Result<std::vector<uint8_t>> recover(std::shared_ptr<MemoryDevice> disk, bool clean) override;

 private:
  BlockCacheOptions options_;
};

// A qcow2 image on a disk that takes only whole sectors of `sector_size`
// bytes, through an AlignedDevice: the qcow2 filter over such a plugin.
class Qcow2OnSectorsTarget final : public Qcow2Target {
 public:
  Qcow2OnSectorsTarget(uint32_t sector_size, Qcow2OpenOptions options = {})
      : Qcow2Target(std::move(options)), sector_size_(sector_size) {}
  Result<std::shared_ptr<BlockDevice>> open(std::shared_ptr<BlockDevice> disk) override;
  uint32_t disk_sector_size() const override { return sector_size_; }

 private:
  uint32_t sector_size_;
};

// A qcow2 image over a BlockCache over the disk (a crash loses the cache).
class Qcow2OverCacheTarget final : public Qcow2Target {
 public:
  Qcow2OverCacheTarget(BlockCacheOptions cache, Qcow2OpenOptions options = {})
      : Qcow2Target(std::move(options)), cache_(cache) {}
  Result<std::shared_ptr<BlockDevice>> open(std::shared_ptr<BlockDevice> disk) override;

 private:
  BlockCacheOptions cache_;
};

}  // namespace qcowkit::testing
