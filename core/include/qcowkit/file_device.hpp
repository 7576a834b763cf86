// FileDevice: a BlockDevice over a POSIX file or block device.
// pread/pwrite for I/O, fdatasync for flush, fallocate to punch holes and zero
// ranges (falling back to writing zeroes where the filesystem cannot),
// SEEK_DATA/SEEK_HOLE for extents, ftruncate for resize.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

struct FileOpenOptions {
  bool read_only = false;
  bool create = false;     // create the file if it is missing
  bool exclusive = false;  // with create: fail if it exists (EEXIST)
  bool truncate = false;   // with create: start empty
  // flush() returns without waiting for the disk (qemu's cache=unsafe): for
  // files that are worthless after a crash anyway, such as a conversion's
  // output until it completes.
  bool skip_sync = false;
};

class FileDevice final : public BlockDevice {
 public:
  static Result<std::unique_ptr<FileDevice>> open(const std::string& path,
                                                  const FileOpenOptions& options = {});
  ~FileDevice() override;

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }  // for adapters that lock the file

 private:
  FileDevice(std::string path, int fd, uint64_t size, bool read_only, bool is_block_device,
             bool skip_sync);
  Status write_zero_bytes(uint64_t offset, uint64_t length);
  Error io_error(const char* what, uint64_t offset, int err) const;

  std::string path_;
  int fd_;
  mutable std::mutex size_mutex_;  // guards size_ against concurrent resize
  uint64_t size_;
  bool read_only_;
  bool is_block_device_;
  bool skip_sync_;
  std::atomic<bool> can_punch_hole_{true};  // cleared once the filesystem says EOPNOTSUPP
  std::atomic<bool> can_zero_range_{true};
};

}  // namespace qcowkit
