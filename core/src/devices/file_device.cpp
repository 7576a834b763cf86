#include "qcowkit/file_device.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__linux__)
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#endif

// Emscripten's libc has no hole probing; its lseek rejects these with
// EINVAL, which extents() below already reads as "all data".
#ifndef SEEK_DATA
#define SEEK_DATA 3
#define SEEK_HOLE 4
#endif

namespace qcowkit {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

Result<std::unique_ptr<FileDevice>> FileDevice::open(const std::string& path,
                                                     const FileOpenOptions& options) {
  int flags = O_CLOEXEC | (options.read_only ? O_RDONLY : O_RDWR);
  if (options.create && !options.read_only) {
    flags |= O_CREAT;
    if (options.exclusive) flags |= O_EXCL;
    if (options.truncate) flags |= O_TRUNC;
  }
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    const int err = errno;
    return make_error(err, path + ": cannot open: " + errno_text(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(err, path + ": cannot stat: " + errno_text(err));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  const bool is_block = S_ISBLK(st.st_mode);
#if defined(__linux__)
  if (is_block && ioctl(fd, BLKGETSIZE64, &size) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(err, path + ": cannot read the block device size: " + errno_text(err));
  }
#endif
  if (!is_block && !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(EINVAL, path + ": not a regular file or block device");
  }
  return std::unique_ptr<FileDevice>(
      new FileDevice(path, fd, size, options.read_only, is_block, options.skip_sync));
}

FileDevice::FileDevice(std::string path, int fd, uint64_t size, bool read_only,
                       bool is_block_device, bool skip_sync)
    : path_(std::move(path)), fd_(fd), size_(size), read_only_(read_only),
      is_block_device_(is_block_device), skip_sync_(skip_sync) {}

void FileDevice::advise_appends() {
  std::lock_guard lock(size_mutex_);
  reserving_ = !read_only_ && !is_block_device_ && fd_ >= 0;
}

FileDevice::~FileDevice() {
  if (fd_ < 0) return;
  release_reservation();
  ::close(fd_);
}

void FileDevice::release_reservation() {
  // A truncate to the size the file has frees the blocks past its end and
  // changes no byte (and, not being to zero, does not trigger ext4's
  // write-back on close).
  std::lock_guard lock(size_mutex_);
  if (reserved_end_ > size_) {
    while (::ftruncate(fd_, static_cast<off_t>(size_)) != 0 && errno == EINTR) {
    }
  }
  reserved_end_ = 0;
}

Error FileDevice::io_error(const char* what, uint64_t offset, int err) const {
  return make_error(err, path_ + ": " + what + " failed at offset " + std::to_string(offset) +
                             ": " + errno_text(err));
}

DeviceInfo FileDevice::info() const {
  std::lock_guard lock(size_mutex_);
  return DeviceInfo{size_, 1, read_only_};
}

#define QK_CHECK_OPEN(op) \
  if (fd_ < 0) return make_error(EBADF, path_ + ": " op ": device is closed")

Status FileDevice::read(uint64_t offset, ByteSpan buffer) {
  QK_CHECK_OPEN("read");
  QK_TRY(check_request(info(), offset, buffer.size(), false, "read"));
  size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = ::pread(fd_, buffer.data() + done, buffer.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read", offset + done, errno);
    }
    if (n == 0) {  // the file shrank under us: what lies beyond reads as zeroes
      std::memset(buffer.data() + done, 0, buffer.size() - done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status FileDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  QK_CHECK_OPEN("write");
  QK_TRY(check_request(info(), offset, data.size(), true, "write"));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write", offset + done, errno);
    }
    if (n == 0) return io_error("write", offset + done, ENOSPC);
    done += static_cast<size_t>(n);
  }
  if (flags.fua) return flush();
  return {};
}

Status FileDevice::flush() {
  QK_CHECK_OPEN("flush");
  if (read_only_ || skip_sync_) return {};
  while (::fdatasync(fd_) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    return make_error(err, path_ + ": flush failed: " + errno_text(err));
  }
  return {};
}

// Writes zero bytes in large pieces; the slow path when fallocate cannot help.
Status FileDevice::write_zero_bytes(uint64_t offset, uint64_t length) {
  static const std::vector<uint8_t> zeroes(1u << 20, 0);
  while (length > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, zeroes.size()));
    QK_TRY(write(offset, ConstByteSpan(zeroes.data(), n)));
    offset += n;
    length -= n;
  }
  return {};
}

Status FileDevice::discard(uint64_t offset, uint64_t length) {
  QK_CHECK_OPEN("discard");
  QK_TRY(check_request(info(), offset, length, true, "discard"));
  return write_zeroes(offset, length, ZeroFlags{.may_trim = true});
}

Status FileDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  QK_CHECK_OPEN("write_zeroes");
  QK_TRY(check_request(info(), offset, length, true, "write_zeroes"));
  if (length == 0) return {};
#if defined(__linux__)
  if (flags.may_trim && can_punch_hole_ && !is_block_device_) {
    if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0)
      return flags.fua ? flush() : Status{};
    if (errno == EOPNOTSUPP || errno == ENOSYS) can_punch_hole_ = false;
    else return io_error("punching a hole", offset, errno);
  }
  if (can_zero_range_ && !is_block_device_) {
    if (fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length) == 0)
      return flags.fua ? flush() : Status{};
    if (errno == EOPNOTSUPP || errno == ENOSYS) can_zero_range_ = false;
    else return io_error("zeroing a range", offset, errno);
  }
#endif
  if (flags.fast_only)
    return make_error(ENOTSUP, path_ + ": cannot zero a range quickly on this filesystem");
  QK_TRY(write_zero_bytes(offset, length));
  return flags.fua ? flush() : Status{};
}

Status FileDevice::resize(uint64_t new_size) {
  QK_CHECK_OPEN("resize");
  if (read_only_) return make_error(EROFS, path_ + ": resize: device is read-only");
  if (is_block_device_) return make_error(ENOTSUP, path_ + ": cannot resize a block device");
  if (new_size > static_cast<uint64_t>(INT64_MAX))
    return make_error(EINVAL, path_ + ": resize: size too large");
  std::lock_guard lock(size_mutex_);
  // A truncate that changes nothing is skipped: ext4 (auto_da_alloc) takes
  // a truncate to zero as "the file is being replaced" and starts writing
  // back every dirty page of the file when it is closed, so clearing a new,
  // empty image this way would make closing it after a conversion wait for
  // the whole output to be submitted to the disk.
  // (The file is asked only when the size this device knows already
  // matches, so that growing a file costs no extra call.)
  struct stat st;
  if (new_size == size_ && ::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) == new_size)
    return {};
  const bool shrinking = new_size < size_;
  if (!shrinking) reserve_ahead_locked(new_size);
  while (::ftruncate(fd_, static_cast<off_t>(new_size)) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    return make_error(err, path_ + ": resize to " + std::to_string(new_size) +
                               " bytes failed: " + errno_text(err));
  }
  size_ = new_size;
  // Shrinking gave back the blocks past the new end, reserved ones too.
  if (shrinking) reserved_end_ = std::min(reserved_end_, new_size);
  return {};
}

void FileDevice::reserve_ahead_locked(uint64_t new_end) {
#if defined(__linux__)
  if (!reserving_ || new_end <= reserved_end_) return;
  // Ahead by as much as the file holds already, from 1 MiB to 64 MiB: a
  // small image reserves little, a large one calls fallocate once per 64 MiB.
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  const uint64_t ahead = std::clamp<uint64_t>(new_end, kMiB, 64 * kMiB);
  // Only while the file grows a little at a time (2 MiB is qcow2's largest
  // cluster), and not for an empty file's first size (a new image's
  // header area, not all of it written): reserved blocks the file grows
  // over without writing them count as allocated, though they read as
  // zeroes, so a jump must stay a hole.
  if (size_ == 0 || new_end - size_ > 2 * kMiB) return;
  const uint64_t start = std::max(reserved_end_, size_);
  const uint64_t end = (new_end + ahead + kMiB - 1) / kMiB * kMiB;
  if (end > static_cast<uint64_t>(INT64_MAX)) return;
  if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start),
                  static_cast<off_t>(end - start)) == 0) {
    reserved_end_ = end;
    return;
  }
  // Only a hint: a filesystem without fallocate is never asked again; a
  // full one is asked again once the file grows past this range, and the
  // writes themselves report what is really out of space. A full one may
  // have reserved part of the range before failing: close gives it back.
  const int err = errno;
  reserved_end_ = end;
  if (err == EOPNOTSUPP || err == ENOSYS || err == EINVAL || err == ENODEV || err == EPERM)
    reserving_ = false;
#else
  (void)new_end;
#endif
}

Result<std::vector<Extent>> FileDevice::extents(uint64_t offset, uint64_t length) {
  QK_CHECK_OPEN("extents");
  QK_TRY(check_request(info(), offset, length, false, "extents"));
  std::vector<Extent> out;
  if (length == 0) return out;
  const uint64_t end = offset + length;
  if (is_block_device_) {
    out.push_back(Extent{offset, length, ExtentKind::data});
    return out;
  }
  // Alternate SEEK_DATA / SEEK_HOLE; a filesystem without them reports the
  // whole file as data (lseek then returns the end for SEEK_HOLE).
  uint64_t pos = offset;
  while (pos < end && out.size() < 1024) {
    off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) {  // no data after pos: the rest is a hole
        out.push_back(Extent{pos, end - pos, ExtentKind::hole});
        break;
      }
      if (errno == EINVAL || errno == EOPNOTSUPP) {
        out.push_back(Extent{pos, end - pos, ExtentKind::data});
        break;
      }
      return io_error("SEEK_DATA", pos, errno);
    }
    uint64_t data_start = std::min<uint64_t>(static_cast<uint64_t>(data), end);
    if (data_start > pos) {
      out.push_back(Extent{pos, data_start - pos, ExtentKind::hole});
      pos = data_start;
      if (pos >= end) break;
    }
    off_t hole = ::lseek(fd_, static_cast<off_t>(pos), SEEK_HOLE);
    if (hole < 0) return io_error("SEEK_HOLE", pos, errno);
    uint64_t data_end = std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    if (data_end <= pos) data_end = end;  // the file changed under us; call it data
    out.push_back(Extent{pos, data_end - pos, ExtentKind::data});
    pos = data_end;
  }
  return out;
}

Status FileDevice::close() {
  if (fd_ < 0) return {};
  release_reservation();
  Status flushed = read_only_ ? Status{} : flush();
  ::close(fd_);
  fd_ = -1;
  return flushed;
}

}  // namespace qcowkit
