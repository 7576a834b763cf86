// BlockMapImage: the BlockDevice shared by the formats that map a guest disk
// in fixed-size blocks onto a file through one table (VHD's BAT, VDI's block
// map, VMDK's grain tables). A format supplies a BlockMap that says where a
// block lies and how a new one gets a home; the image does the reading,
// writing, zeroing and extents around it, so each format file holds only its
// on-disk structures.
//
// Thread safety: BlockMapImage is thread-safe. Its lock guards the map: a
// BlockMap's locate() runs under it shared, allocate() and sync() under it
// exclusively, so a BlockMap needs no lock of its own. Data I/O runs outside
// the lock. Ownership: the image owns its BlockMap and shares the file.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "qcowkit/block_device.hpp"
#include "qcowkit/mutex.hpp"

namespace qcowkit::formats {

struct BlockLocation {
  enum class Kind { hole, zero, data, special };
  Kind kind = Kind::hole;
  uint64_t host_offset = 0;  // data: the file offset of the block's first byte
};

class BlockMap {
 public:
  virtual ~BlockMap() = default;
  virtual uint64_t block_size() const = 0;
  // Where guest block `block` lies; `block` is below the image's block count.
  virtual BlockLocation locate(uint64_t block) const = 0;
  // Gives an unallocated block a home in the file, which then reads as
  // zeroes, and records it on disk; returns its file offset.
  virtual Result<uint64_t> allocate(uint64_t block) = 0;
  // Reads part of a `special` block (a compressed grain).
  virtual Status read_special(uint64_t block, uint64_t offset_in_block, ByteSpan out);
  // Writes what the map keeps in memory only (counters, a footer).
  virtual Status sync() { return {}; }
  // True when guest offsets are file offsets (a fixed VHD): extents then
  // come from the file, so its holes stay holes in a conversion.
  virtual bool identity_mapped() const { return false; }
  // Whether extents() looks into the file for holes inside allocated blocks
  // (they read as zeroes). qemu-img does for VDI but not for dynamic VHD;
  // following it keeps `map` output the same.
  virtual bool file_holes_are_zero() const { return true; }
};

// Walks [offset, offset + length) one block at a time: fn(pos, block,
// in_block, done, n) for each piece, where `pos` (= offset + done) is the
// piece's guest offset, `block` and `in_block` where it falls, and `n` its
// length (to the block's end at most). Stops at the first error.
template <class Fn>
Status for_each_block_piece(uint64_t offset, uint64_t length, uint64_t block_size, Fn&& fn) {
  for (uint64_t done = 0; done < length;) {
    const uint64_t pos = offset + done;
    const uint64_t in_block = pos % block_size;
    const uint64_t n = std::min(block_size - in_block, length - done);
    QK_TRY(fn(pos, pos / block_size, in_block, done, n));
    done += n;
  }
  return {};
}

class BlockMapImage final : public BlockDevice {
 public:
  // `name` prefixes messages ("vpc image"). `size` is the virtual size.
  BlockMapImage(std::shared_ptr<BlockDevice> file, std::unique_ptr<BlockMap> map, uint64_t size,
                bool read_only, std::string name);
  ~BlockMapImage() override;

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  FileLocation file_location(uint64_t offset) override;
  Status close() override;

 private:
  Status check(uint64_t offset, uint64_t length, bool mutating, const char* op) const;
  BlockLocation locate(uint64_t block) const QK_EXCLUDES(mutex_);
  Result<uint64_t> ensure_allocated(uint64_t block) QK_EXCLUDES(mutex_);
  Status add_file_extents(std::vector<Extent>& out, uint64_t guest, uint64_t host,
                          uint64_t length) const;  // the file only: no lock of mutex_ needed
  bool within_known_file_data(uint64_t host, uint64_t length) const;

  // How far past a block add_file_extents asks the file about.
  static constexpr uint64_t kFileLookahead = uint64_t{64} << 20;

  std::shared_ptr<BlockDevice> file_;
  const std::unique_ptr<BlockMap> map_ QK_PT_GUARDED_BY(mutex_);
  const uint64_t size_, block_size_;
  const bool identity_;
  const bool read_only_;
  const std::string name_;
  mutable SharedMutex mutex_;  // guards what map_ points to, and closed_
  bool closed_ QK_GUARDED_BY(mutex_) = false;
  // The last run of the file known to hold data, [first, second), by file offset.
  mutable Mutex known_mutex_;
  mutable std::pair<uint64_t, uint64_t> known_data_ QK_GUARDED_BY(known_mutex_){0, 0};
};

}  // namespace qcowkit::formats
