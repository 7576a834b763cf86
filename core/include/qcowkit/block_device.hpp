// BlockDevice: the one abstraction every layer of qcowkit speaks.
//
// A BlockDevice is a resizable array of bytes with a sector size. Plain
// devices (memory, a POSIX file, an nbdkit plugin, a browser file) and
// derived ones (a qcow2 image, a write-back cache) all implement it, so they
// stack: a Qcow2Image over a BlockCache over a FileDevice.
//
// Contract shared by every implementation:
//  * Offsets and lengths are in bytes and must be multiples of
//    info().sector_size; a request must lie inside [0, info().size).
//    Violations fail with EINVAL (misaligned) or ERANGE (out of range),
//    never undefined behaviour.
//  * Mutating calls on a read-only device fail with EROFS; any call after
//    close() fails with EBADF.
//  * A write is durable once flush() (or a write with fua) has returned
//    success; until then a power cut may lose it.
//  * discard() deallocates: afterwards the range reads as zeroes (or, for a
//    layered image, as whatever lies beneath it).
//  * resize() that grows leaves the new bytes reading as zeroes, as a file
//    grown by ftruncate does (the qcow2 engine writes only the data of a
//    partial write into clusters it allocates there, not the zeroes around).
//  * Implementations in core are safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <functional>
#include <span>
#include <vector>

#include "qcowkit/result.hpp"

namespace qcowkit {

using ByteSpan = std::span<uint8_t>;
using ConstByteSpan = std::span<const uint8_t>;

struct DeviceInfo {
  uint64_t size = 0;         // bytes
  uint32_t sector_size = 1;  // alignment every request must respect
  bool read_only = false;
};

// What a range of a device holds, as far as the device knows.
enum class ExtentKind : uint8_t {
  data,  // allocated; may hold any bytes (including zeroes)
  zero,  // reads as zeroes, known to the device (e.g. a qcow2 zero cluster)
  hole,  // unallocated; reads as zeroes
};

const char* to_string(ExtentKind kind);

struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  ExtentKind kind = ExtentKind::data;
  bool operator==(const Extent&) const = default;
};

// Where guest bytes lie in a device's own file (see file_location).
struct FileLocation {
  std::optional<uint64_t> offset;  // none: not stored there as plain bytes
  uint64_t length = 0;             // guest bytes from the asked offset this answer covers
};

struct WriteFlags {
  bool fua = false;  // durable before the call returns
};

struct ZeroFlags {
  bool may_trim = false;   // the range may be deallocated rather than written
  bool fast_only = false;  // fail with ENOTSUP unless it is cheap (metadata only)
  bool fua = false;
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  virtual DeviceInfo info() const = 0;
  virtual Status read(uint64_t offset, ByteSpan buffer) = 0;
  virtual Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) = 0;
  virtual Status flush() = 0;
  virtual Status discard(uint64_t offset, uint64_t length) = 0;
  virtual Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) = 0;
  virtual Status resize(uint64_t new_size) = 0;

  // Describes [offset, offset + length): the returned extents are contiguous,
  // start at `offset`, are never empty, and never reach past offset + length,
  // but may stop before it (call again from where they end). A device that
  // knows nothing reports one data extent.
  virtual Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) = 0;

  // Where the bytes at guest `offset` lie in the file this device maps
  // onto, as `qemu-img map` shows them ("offset"): a file offset when they
  // are stored there uncompressed, contiguously for `length` bytes; no
  // offset for what is not (holes, zeroes, compressed data). Only a format
  // over a file answers (the block-table formats); the default says
  // nothing for the whole rest of the device.
  virtual FileLocation file_location(uint64_t offset) {
    const uint64_t size = info().size;
    return {std::nullopt, offset < size ? size - offset : 0};
  }

  // Advice from whoever writes the device: it grows the device a little at
  // a time and writes every byte it grows it by (an image appending whole
  // clusters), so space may be set aside ahead of the end. The default
  // ignores it; see FileDevice.
  virtual void advise_appends() {}

  // Flushes and releases the device; later calls fail with EBADF. Safe to
  // call twice. Destructors close too, but cannot report errors. A device
  // stacked on another (Qcow2Image, BlockCache, the format readers) shares
  // the one below and never closes it: whoever opened a device closes it,
  // after the devices stacked on it.
  virtual Status close() = 0;
};

// Checks a request against a device's geometry. `mutating` adds the
// read-only check. Implementations call this first in every entry point.
Status check_request(const DeviceInfo& info, uint64_t offset, uint64_t length,
                     bool mutating, const char* operation);

// Walks every extent of [offset, offset + length), calling `visit` for each
// (adjacent extents of one kind are merged). Stops at the first error,
// including an error returned by `visit`.
Status for_each_extent(BlockDevice& device, uint64_t offset, uint64_t length,
                       const std::function<Status(const Extent&)>& visit);

// True when every byte of `data` is zero. Fast: compares words.
bool is_all_zero(ConstByteSpan data);

}  // namespace qcowkit
