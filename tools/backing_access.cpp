#include "backing_access.hpp"

#include <algorithm>

namespace qcowkit::cli {

Result<std::vector<MapEntry>> own_allocations(Qcow2Image& image) {
  const uint64_t size = image.info().size;
  QK_ASSIGN_OR_RETURN(std::vector<MapEntry> map, image.map(0, size));
  std::vector<MapEntry> own;
  for (const MapEntry& e : map)
    if (e.present && e.depth == 0 && e.length > 0) own.push_back(e);
  return own;
}

Status copy_range(BlockDevice& from, BlockDevice& to, uint64_t offset, uint64_t length) {
  std::vector<uint8_t> buf(std::min<uint64_t>(length, 1u << 20));
  for (uint64_t pos = offset; pos < offset + length;) {
    const uint64_t n = std::min<uint64_t>(buf.size(), offset + length - pos);
    ByteSpan chunk(buf.data(), n);
    QK_TRY(from.read(pos, chunk));
    QK_TRY(to.write(pos, ConstByteSpan(buf.data(), n)));
    pos += n;
  }
  return {};
}

}  // namespace qcowkit::cli
