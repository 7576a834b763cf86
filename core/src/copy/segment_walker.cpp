#include "copy/segment_walker.hpp"

#include <algorithm>
#include <string>

#include "copy/request_geometry.hpp"

namespace qcowkit::engine {

SegmentWalker::SegmentWalker(BlockDevice& first, BlockDevice* second, uint64_t size,
                             uint64_t alignment, const char* operation, uint64_t begin)
    : size_(size), alignment_(alignment ? alignment : 1), operation_(operation), position_(begin) {
  first_.device = &first;
  second_.device = second;
}

Result<Extent> SegmentWalker::extent_at(Cursor& cursor, uint64_t offset) {
  // A segment rounded to a coarse alignment may end before the extent just
  // looked at: step back to the one holding `offset`, or ask again.
  while (cursor.index > 0 && cursor.index <= cursor.extents.size() &&
         (cursor.index == cursor.extents.size() || cursor.extents[cursor.index].offset > offset) &&
         cursor.extents[cursor.index - 1].offset + cursor.extents[cursor.index - 1].length > offset)
    --cursor.index;
  if (cursor.index < cursor.extents.size() && cursor.extents[cursor.index].offset > offset)
    cursor.index = cursor.extents.size();
  while (cursor.index < cursor.extents.size() &&
         cursor.extents[cursor.index].offset + cursor.extents[cursor.index].length <= offset)
    ++cursor.index;
  if (cursor.index == cursor.extents.size()) {
    auto fetched = cursor.device->extents(offset, size_ - offset);
    if (!fetched.ok()) return failed_at(operation_, "extents", offset, fetched.error());
    cursor.extents = std::move(fetched).value();
    cursor.index = 0;
    // Trust nothing: a broken device must not send us backwards or past the end.
    uint64_t expected = offset;
    for (const Extent& e : cursor.extents) {
      if (e.offset != expected || e.length == 0 || e.length > size_ - expected)
        return make_error(EIO, std::string(operation_) + ": device reported an invalid extent " +
                                   std::to_string(e.offset) + "+" + std::to_string(e.length) +
                                   " when asked about offset " + std::to_string(offset));
      expected += e.length;
    }
    if (cursor.extents.empty())
      return make_error(EIO, std::string(operation_) + ": device reported no extents at offset " +
                                 std::to_string(offset));
  }
  Extent e = cursor.extents[cursor.index];
  if (e.offset > offset)  // cannot happen after the checks above; stay safe anyway
    return make_error(EIO, std::string(operation_) + ": extents skip offset " +
                               std::to_string(offset));
  e.length -= offset - e.offset;
  e.offset = offset;
  return e;
}

Result<SegmentWalker::Piece> SegmentWalker::piece_at(uint64_t offset) {
  QK_ASSIGN_OR_RETURN(Extent a, extent_at(first_, offset));
  Piece piece{a.offset + a.length, a.kind == ExtentKind::data};
  if (second_.device) {
    QK_ASSIGN_OR_RETURN(Extent b, extent_at(second_, offset));
    piece.end = std::min(piece.end, b.offset + b.length);
    piece.mapped = piece.mapped || b.kind == ExtentKind::data;
  }
  return piece;
}

Result<std::optional<Segment>> SegmentWalker::next() {
  if (position_ >= size_) return std::optional<Segment>();
  const uint64_t start = position_;
  QK_ASSIGN_OR_RETURN(Piece run, piece_at(start));
  while (run.end < size_) {
    QK_ASSIGN_OR_RETURN(Piece more, piece_at(run.end));
    if (more.mapped != run.mapped) break;
    run.end = more.end;
  }
  uint64_t end = run.end;
  bool mapped = run.mapped;
  if (!mapped) {
    end = align_down(end, alignment_);
    if (end <= start) mapped = true;
  }
  if (mapped) end = align_up(std::max(end, run.end), alignment_, size_);
  position_ = end;
  return std::optional<Segment>(Segment{start, end - start, mapped});
}

}  // namespace qcowkit::engine
