#include "qcowkit/block_device.hpp"

#include <cstring>
#include <string>

namespace qcowkit {

const char* to_string(ExtentKind kind) {
  switch (kind) {
    case ExtentKind::data: return "data";
    case ExtentKind::zero: return "zero";
    case ExtentKind::hole: return "hole";
  }
  return "unknown";
}

Status check_request(const DeviceInfo& info, uint64_t offset, uint64_t length,
                     bool mutating, const char* operation) {
  if (mutating && info.read_only)
    return make_error(EROFS, std::string(operation) + ": device is read-only");
  if (offset > info.size || length > info.size - offset)
    return make_error(ERANGE, std::string(operation) + ": range " + std::to_string(offset) +
                                  "+" + std::to_string(length) + " is beyond the end of the " +
                                  std::to_string(info.size) + "-byte device");
  const uint64_t sector = info.sector_size ? info.sector_size : 1;
  if (offset % sector != 0 || length % sector != 0)
    return make_error(EINVAL, std::string(operation) + ": range " + std::to_string(offset) +
                                  "+" + std::to_string(length) + " is not aligned to the " +
                                  std::to_string(sector) + "-byte sector size");
  return {};
}

Status for_each_extent(BlockDevice& device, uint64_t offset, uint64_t length,
                       const std::function<Status(const Extent&)>& visit) {
  const uint64_t end = offset + length;
  Extent pending{offset, 0, ExtentKind::data};
  while (offset < end) {
    QK_ASSIGN_OR_RETURN(auto extents, device.extents(offset, end - offset));
    if (extents.empty())
      return make_error(EIO, "device reported no extents at offset " + std::to_string(offset));
    for (const Extent& e : extents) {
      if (e.offset != offset || e.length == 0 || e.length > end - offset)
        return make_error(EIO, "device reported an invalid extent at offset " +
                                   std::to_string(offset));
      if (pending.length != 0 && pending.kind == e.kind) {
        pending.length += e.length;
      } else {
        if (pending.length != 0) QK_TRY(visit(pending));
        pending = e;
      }
      offset += e.length;
    }
  }
  if (pending.length != 0) QK_TRY(visit(pending));
  return {};
}

bool is_all_zero(ConstByteSpan data) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    if (*p) return false;
    ++p;
    --n;
  }
  for (; n >= 32; p += 32, n -= 32) {
    uint64_t w[4];
    std::memcpy(w, p, sizeof w);
    if (w[0] | w[1] | w[2] | w[3]) return false;
  }
  for (; n > 0; ++p, --n)
    if (*p) return false;
  return true;
}

}  // namespace qcowkit
