#include "formats/block_map_image.hpp"

#include <algorithm>
#include <cstring>

namespace qcowkit::formats {

Status BlockMap::read_special(uint64_t, uint64_t, ByteSpan) {
  return make_error(EIO, "this format has no special blocks");
}

BlockMapImage::BlockMapImage(std::shared_ptr<BlockDevice> file, std::unique_ptr<BlockMap> map,
                             uint64_t size, bool read_only, std::string name)
    : file_(std::move(file)),
      map_(std::move(map)),
      size_(size),
      block_size_(map_->block_size()),
      identity_(map_->identity_mapped()),
      read_only_(read_only),
      name_(std::move(name)) {}

BlockMapImage::~BlockMapImage() { (void)close(); }

DeviceInfo BlockMapImage::info() const { return DeviceInfo{size_, 1, read_only_}; }

Status BlockMapImage::check(uint64_t offset, uint64_t length, bool mutating,
                            const char* op) const {
  {
    ReaderLock lock(mutex_);
    if (closed_) return make_error(EBADF, name_ + ": " + op + ": image is closed");
  }
  Status st = check_request(info(), offset, length, mutating, op);
  if (!st.ok()) return with_context(std::move(st).error(), name_);
  return {};
}

BlockLocation BlockMapImage::locate(uint64_t block) const {
  ReaderLock lock(mutex_);
  return map_->locate(block);
}

Result<uint64_t> BlockMapImage::ensure_allocated(uint64_t block) {
  WriterLock lock(mutex_);
  // Another writer may have allocated it since we looked.
  BlockLocation loc = map_->locate(block);
  if (loc.kind == BlockLocation::Kind::data) return loc.host_offset;
  if (loc.kind == BlockLocation::Kind::special)
    return make_error(ENOTSUP, name_ + ": compressed blocks cannot be rewritten");
  auto allocated = map_->allocate(block);
  if (!allocated.ok()) return with_context(std::move(allocated).error(), name_);
  return allocated;
}

Status BlockMapImage::read(uint64_t offset, ByteSpan buffer) {
  QK_TRY(check(offset, buffer.size(), false, "read"));
  return for_each_block_piece(offset, buffer.size(), block_size_,
                              [&](uint64_t pos, uint64_t block, uint64_t in_block, uint64_t done,
                                  uint64_t n) -> Status {
    ByteSpan piece = buffer.subspan(done, n);
    Status st;
    switch (const BlockLocation loc = locate(block); loc.kind) {
      case BlockLocation::Kind::hole:
      case BlockLocation::Kind::zero:
        std::memset(piece.data(), 0, n);
        break;
      case BlockLocation::Kind::data:
        st = file_->read(loc.host_offset + in_block, piece);
        break;
      case BlockLocation::Kind::special: {
        // Compressed blocks never move (such images are read-only), so
        // decoding under the shared lock holds nobody up.
        ReaderLock lock(mutex_);
        st = map_->read_special(block, in_block, piece);
        break;
      }
    }
    if (!st.ok()) return with_context(std::move(st).error(), name_ + ": reading guest offset " + std::to_string(pos));
    return {};
  });
}

Status BlockMapImage::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  QK_TRY(check(offset, data.size(), true, "write"));
  QK_TRY(for_each_block_piece(offset, data.size(), block_size_,
                              [&](uint64_t, uint64_t block, uint64_t in_block, uint64_t done,
                                  uint64_t n) -> Status {
    ConstByteSpan piece = data.subspan(done, n);
    const BlockLocation loc = locate(block);
    uint64_t host = loc.host_offset;
    if (loc.kind != BlockLocation::Kind::data) {
      // Zeroes into a block that reads as zeroes already: keep it unallocated.
      if (loc.kind != BlockLocation::Kind::special && is_all_zero(piece)) return {};
      QK_ASSIGN_OR_RETURN(host, ensure_allocated(block));
    }
    return file_->write(host + in_block, piece);
  }));
  if (flags.fua) return flush();
  return {};
}

Status BlockMapImage::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  QK_TRY(check(offset, length, true, "write_zeroes"));
  if (flags.fast_only) return make_error(ENOTSUP, name_ + ": no fast zeroing");
  QK_TRY(for_each_block_piece(offset, length, block_size_,
                              [&](uint64_t, uint64_t block, uint64_t in_block, uint64_t, uint64_t n) -> Status {
    const BlockLocation loc = locate(block);
    if (loc.kind == BlockLocation::Kind::data)
      return file_->write_zeroes(loc.host_offset + in_block, n, {.may_trim = false});
    if (loc.kind == BlockLocation::Kind::special)
      return make_error(ENOTSUP, name_ + ": compressed blocks cannot be rewritten");
    return {};
  }));
  if (flags.fua) return flush();
  return {};
}

// Blocks are never given back (none of these formats can reuse a block's
// place in the file), so a discard zeroes.
Status BlockMapImage::discard(uint64_t offset, uint64_t length) {
  return write_zeroes(offset, length, {});
}

Status BlockMapImage::resize(uint64_t) {
  return make_error(ENOTSUP, name_ + ": resizing is not supported; convert to qcow2 first");
}

Status BlockMapImage::flush() {
  {
    WriterLock lock(mutex_);
    if (closed_) return make_error(EBADF, name_ + ": flush: image is closed");
    if (!read_only_) QK_TRY(map_->sync());
  }
  return read_only_ ? Status{} : file_->flush();
}

namespace {

// Adds [offset, offset + length) of `kind`, merging with the last extent.
void add_extent(std::vector<Extent>& out, uint64_t offset, uint64_t length, ExtentKind kind) {
  if (!out.empty() && out.back().kind == kind)
    out.back().length += length;
  else
    out.push_back(Extent{offset, length, kind});
}

}  // namespace

// Unallocated blocks are holes. Allocated ones are data, except where the
// file itself has holes (a static VDI, a fixed VHD, blocks never written
// in full): those read as zeroes the image knows of, so conversions skip
// them, and qemu-img reports them the same way.
Status BlockMapImage::add_file_extents(std::vector<Extent>& out, uint64_t guest, uint64_t host,
                                       uint64_t length) const {
  uint64_t done = 0;
  while (done < length) {
    // Blocks mostly follow one another in the file: the first look goes
    // well ahead (lseek's SEEK_DATA/SEEK_HOLE), and the run of data it
    // finds answers for the blocks after this one too
    // (within_known_file_data).
    const uint64_t at = host + done, file_size = file_->info().size;
    uint64_t ask = length - done;
    if (done == 0 && at < file_size) ask = std::min(file_size - at, std::max(ask, kFileLookahead));
    QK_ASSIGN_OR_RETURN(auto pieces, file_->extents(at, ask));
    if (pieces.empty()) return make_error(EIO, name_ + ": the file reported no extents");
    if (done == 0 && pieces.front().kind == ExtentKind::data) {
      MutexLock lock(known_mutex_);
      known_data_ = {at, at + pieces.front().length};
    }
    for (const Extent& e : pieces) {
      const uint64_t n = std::min(e.length, length - done);
      if (n == 0) break;
      add_extent(out, guest + done, n, e.kind == ExtentKind::data ? ExtentKind::data : ExtentKind::zero);
      done += n;
    }
  }
  return {};
}

// Data already seen in the file is still data: blocks are never given
// back to the file while the image is open, and a range called data that
// later reads as zeroes only costs a conversion some sparseness.
bool BlockMapImage::within_known_file_data(uint64_t host, uint64_t length) const {
  MutexLock lock(known_mutex_);
  return host >= known_data_.first && host + length <= known_data_.second;
}

FileLocation BlockMapImage::file_location(uint64_t offset) {
  if (offset >= size_) return {};
  if (identity_) return {offset, size_ - offset};
  const uint64_t within = offset % block_size_;
  const uint64_t length = std::min(block_size_ - within, size_ - offset);
  ReaderLock lock(mutex_);
  if (closed_) return {std::nullopt, length};
  const BlockLocation loc = map_->locate(offset / block_size_);
  if (loc.kind != BlockLocation::Kind::data) return {std::nullopt, length};
  return {loc.host_offset + within, length};
}

Result<std::vector<Extent>> BlockMapImage::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check(offset, length, false, "extents"));
  std::vector<Extent> out;
  if (identity_) {
    QK_TRY(add_file_extents(out, offset, offset, length));
    return out;
  }
  const uint64_t end = offset + length;
  uint64_t pos = offset;
  // A bounded answer: callers ask again from where it stops.
  constexpr size_t kMaxExtents = 1024;
  constexpr uint64_t kMaxBlocks = 1u << 20;
  ReaderLock lock(mutex_);
  for (uint64_t seen = 0; pos < end && out.size() < kMaxExtents && seen < kMaxBlocks; ++seen) {
    const uint64_t block = pos / block_size_;
    const uint64_t n = std::min(end, (block + 1) * block_size_) - pos;
    const BlockLocation loc = map_->locate(block);
    switch (loc.kind) {
      case BlockLocation::Kind::hole: add_extent(out, pos, n, ExtentKind::hole); break;
      case BlockLocation::Kind::zero: add_extent(out, pos, n, ExtentKind::zero); break;
      case BlockLocation::Kind::special: add_extent(out, pos, n, ExtentKind::data); break;
      case BlockLocation::Kind::data:
        if (!map_->file_holes_are_zero() || within_known_file_data(loc.host_offset + pos % block_size_, n)) {
          add_extent(out, pos, n, ExtentKind::data);
          break;
        }
        QK_TRY(add_file_extents(out, pos, loc.host_offset + pos % block_size_, n));
        break;
    }
    pos += n;
  }
  return out;
}

Status BlockMapImage::close() {
  Status result;
  {
    WriterLock lock(mutex_);
    if (closed_) return {};
    closed_ = true;
    if (!read_only_) result = map_->sync();
  }
  // The file stays open: it is shared, and its owner closes it (as for qcow2).
  if (!read_only_ && result.ok()) result = file_->flush();
  return result;
}

}  // namespace qcowkit::formats
