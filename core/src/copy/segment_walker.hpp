// SegmentWalker: splits a device (or two devices of one size, read side by
// side) into maximal runs that are "mapped" (some device holds data there)
// or "unmapped" (every device reads zeroes: hole or zero extents).
//
// Segments are aligned to `alignment` so every request built from them is
// legal on each device: a mapped run grows outwards to the next boundary, an
// unmapped run shrinks inwards (and one too short to hold an aligned block
// is reported as mapped instead, which costs a read but is never wrong).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit::engine {

struct Segment {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool mapped = false;
};

class SegmentWalker {
 public:
  // `second` may be null. Both devices must be at least `size` bytes. The
  // walk covers [begin, size); `begin` must be a multiple of `alignment`.
  SegmentWalker(BlockDevice& first, BlockDevice* second, uint64_t size, uint64_t alignment,
                const char* operation, uint64_t begin = 0);

  // The next segment from where the last one ended; nullopt at the end.
  Result<std::optional<Segment>> next();

 private:
  // Caches one device's extents so each is asked for once, in order.
  struct Cursor {
    BlockDevice* device = nullptr;
    std::vector<Extent> extents;
    size_t index = 0;
  };
  struct Piece {
    uint64_t end;
    bool mapped;
  };
  Result<Extent> extent_at(Cursor& cursor, uint64_t offset);
  Result<Piece> piece_at(uint64_t offset);

  Cursor first_, second_;
  uint64_t size_;
  uint64_t alignment_;
  const char* operation_;
  uint64_t position_ = 0;
};

}  // namespace qcowkit::engine
