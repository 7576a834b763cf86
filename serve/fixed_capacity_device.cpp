#include "serve/fixed_capacity_device.hpp"

#include <algorithm>
#include <vector>

namespace qcowkit::serve {

Result<std::shared_ptr<FixedCapacityDevice>> FixedCapacityDevice::open(
    std::shared_ptr<BlockDevice> below) {
  const uint64_t capacity = below->info().size;
  uint64_t data_end = 0;  // the end of the last data extent
  QK_TRY(for_each_extent(*below, 0, capacity, [&](const Extent& e) -> Status {
    if (e.kind == ExtentKind::data) data_end = e.offset + e.length;
    return {};
  }));
  return std::shared_ptr<FixedCapacityDevice>(new FixedCapacityDevice(std::move(below), data_end));
}

FixedCapacityDevice::FixedCapacityDevice(std::shared_ptr<BlockDevice> below, uint64_t zero_from)
    : below_(std::move(below)), size_(below_->info().size), zero_from_(zero_from) {}

void FixedCapacityDevice::set_file_end(uint64_t end) {
  MutexLock lock(resize_mutex_);
  size_.store(std::min(end, below_->info().size));
}

DeviceInfo FixedCapacityDevice::info() const {
  DeviceInfo info = below_->info();
  info.size = size_.load();
  return info;
}

Status FixedCapacityDevice::read(uint64_t offset, ByteSpan buffer) {
  QK_TRY(check_request(info(), offset, buffer.size(), false, "read"));
  return below_->read(offset, buffer);
}

Status FixedCapacityDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  QK_TRY(check_request(info(), offset, data.size(), true, "write"));
  return below_->write(offset, data, flags);
}

Status FixedCapacityDevice::discard(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(info(), offset, length, true, "discard"));
  return below_->discard(offset, length);
}

Status FixedCapacityDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  QK_TRY(check_request(info(), offset, length, true, "write_zeroes"));
  return below_->write_zeroes(offset, length, flags);
}

Result<std::vector<Extent>> FixedCapacityDevice::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(info(), offset, length, false, "extents"));
  return below_->extents(offset, length);
}

Status FixedCapacityDevice::resize(uint64_t new_size) {
  const DeviceInfo below = below_->info();
  if (below.read_only) return make_error(EROFS, "resize: the device is read-only");
  if (new_size > below.size)
    return make_error(ENOSPC, "the image needs " + std::to_string(new_size) +
                                  " bytes but the plugin below holds " + std::to_string(below.size) +
                                  " (give it room: e.g. truncate -s SIZE on a file, or a larger export)");
  MutexLock lock(resize_mutex_);
  const uint64_t old_size = size_.load();
  if (new_size > old_size && old_size < zero_from_) {
    // Bytes the file held before it shrank: a grown file reads as zeroes.
    const uint64_t stop = std::min(new_size, zero_from_);
    QK_TRY(below_->write_zeroes(old_size, stop - old_size, ZeroFlags{true, false, false}));
  }
  zero_from_ = std::max(zero_from_, new_size);
  size_.store(new_size);
  return {};
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
