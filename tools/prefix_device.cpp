#include "prefix_device.hpp"

namespace qcowkit::cli {

PrefixDevice::PrefixDevice(std::shared_ptr<BlockDevice> inner, uint64_t size)
    : inner_(std::move(inner)), size_(size) {}

DeviceInfo PrefixDevice::info() const {
  DeviceInfo info = inner_->info();
  info.size = size_;
  info.read_only = true;
  return info;
}

Status PrefixDevice::read(uint64_t offset, ByteSpan buffer) {
  QK_TRY(check_request(info(), offset, buffer.size(), false, "read"));
  return inner_->read(offset, buffer);
}

Status PrefixDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags) {
  return check_request(info(), offset, data.size(), true, "write");
}
Status PrefixDevice::flush() { return {}; }
Status PrefixDevice::discard(uint64_t offset, uint64_t length) {
  return check_request(info(), offset, length, true, "discard");
}
Status PrefixDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags) {
  return check_request(info(), offset, length, true, "write_zeroes");
}
Status PrefixDevice::resize(uint64_t) {
  return make_error(EROFS, "resize: this view of the device is read-only");
}

Result<std::vector<Extent>> PrefixDevice::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(info(), offset, length, false, "extents"));
  return inner_->extents(offset, length);
}

Status PrefixDevice::close() { return {}; }

}  // namespace qcowkit::cli
