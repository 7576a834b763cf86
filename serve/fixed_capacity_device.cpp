#include "serve/fixed_capacity_device.hpp"

#include <algorithm>
#include <vector>

namespace qcowkit::serve {

FixedCapacityDevice::FixedCapacityDevice(std::shared_ptr<BlockDevice> below)
    : below_(std::move(below)) {}

Status FixedCapacityDevice::resize(uint64_t new_size) {
  const DeviceInfo info = below_->info();
  if (info.read_only) return make_error(EROFS, "resize: the device is read-only");
  if (new_size <= info.size) return {};
  return make_error(ENOSPC, "the image needs " + std::to_string(new_size) +
                                " bytes but the plugin below holds " + std::to_string(info.size) +
                                " (give it room: e.g. truncate -s SIZE on a file, or a larger export)");
}

Result<bool> device_is_all_zero(BlockDevice& device) {
  const uint64_t size = device.info().size;
  bool zero = true;
  std::vector<uint8_t> buffer;
  Status st = for_each_extent(device, 0, size, [&](const Extent& e) -> Status {
    if (e.kind != ExtentKind::data) return {};
    constexpr uint64_t chunk = 1u << 20;
    buffer.resize(std::min(chunk, e.length));
    for (uint64_t done = 0; done < e.length;) {
      const uint64_t n = std::min(chunk, e.length - done);
      QK_TRY(device.read(e.offset + done, ByteSpan(buffer.data(), n)));
      if (!is_all_zero(ConstByteSpan(buffer.data(), n))) {
        zero = false;
        return make_error(ECANCELED, "found data");  // stops the walk
      }
      done += n;
    }
    return {};
  });
  if (!zero) return false;
  if (!st.ok()) return std::move(st).error();
  return true;
}

}  // namespace qcowkit::serve
