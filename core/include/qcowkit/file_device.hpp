// FileDevice: a BlockDevice over a POSIX file or block device.
// pread/pwrite for I/O, fdatasync for flush, fallocate to punch holes and zero
// ranges (falling back to writing zeroes where the filesystem cannot),
// SEEK_DATA/SEEK_HOLE for extents, ftruncate for resize.
//
// Once advised of appends (advise_appends), growing a regular file a little
// at a time (at most 2 MiB per resize, as an image appends clusters)
// reserves its blocks ahead: fallocate with FALLOC_FL_KEEP_SIZE, up to
// 64 MiB past the new end, doubling with the file. Writes into reserved
// blocks skip the filesystem's per-page delayed allocation, which is most
// of what appending to a new image costs. The reservation lies past the
// end of the file, so it never shows in its bytes; close() and the
// destructor give back what is left of it. A process that dies first
// leaves it allocated past the end (disk space only) until the file is
// next truncated.
//
// Thread safety: every call may come from several threads at once; the
// size and the reservation are guarded by one mutex.
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
  // Starts reserving ahead of growth (above). Only for a writer that
  // writes every byte it grows the file by, such as a qcow2 image, whose
  // clusters are written whole: blocks the file grows over without writing
  // them would stay allocated (reading as zeroes), so a format that leaves
  // parts of its blocks unwritten (vhdx, vhd, vdi) is sparser without.
  void advise_appends() override;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }  // for adapters that lock the file

 private:
  FileDevice(std::string path, int fd, uint64_t size, bool read_only, bool is_block_device,
             bool skip_sync);
  Status write_zero_bytes(uint64_t offset, uint64_t length);
  // Reserves blocks up to past `new_end` before the file grows to it.
  void reserve_ahead_locked(uint64_t new_end);
  // Gives back the blocks reserved past the end (close and the destructor).
  void release_reservation();
  Error io_error(const char* what, uint64_t offset, int err) const;

  std::string path_;
  int fd_;
  mutable std::mutex size_mutex_;  // guards size_ and reserved_end_ against concurrent resize
  uint64_t size_;
  uint64_t reserved_end_ = 0;      // blocks are reserved up to here (past size_ when > size_)
  bool reserving_ = false;         // advised of appends, until the filesystem cannot fallocate
  bool read_only_;
  bool is_block_device_;
  bool skip_sync_;
  std::atomic<bool> can_punch_hole_{true};  // cleared once the filesystem says EOPNOTSUPP
  std::atomic<bool> can_zero_range_{true};
};

}  // namespace qcowkit
