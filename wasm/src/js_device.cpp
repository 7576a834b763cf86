#include "js_device.hpp"

#include <string>

#include "js_bridge.hpp"

namespace qcowkit::wasm {

// Above 2^53 a double no longer holds every byte offset exactly.
constexpr uint64_t kMaxJsOffset = uint64_t{1} << 53;

Result<std::shared_ptr<JsDevice>> JsDevice::attach(int id) {
  const double size = js::device_size(id);
  if (size < 0)
    return make_error(EBADF, "JS device " + std::to_string(id) + ": " + js::last_js_error());
  if (!(size >= 0) || size != static_cast<double>(static_cast<uint64_t>(size)))  // NaN, fractions
    return make_error(EINVAL, "JS device " + std::to_string(id) + ": size() is not a whole number of bytes");
  if (size >= static_cast<double>(kMaxJsOffset))
    return make_error(EFBIG, "JS device " + std::to_string(id) + " is larger than 2^53 bytes");
  const bool read_only = js::device_read_only(id) != 0;
  return std::shared_ptr<JsDevice>(new JsDevice(id, static_cast<uint64_t>(size), read_only));
}

DeviceInfo JsDevice::info() const { return DeviceInfo{size_, 1, read_only_}; }

Status JsDevice::check(uint64_t offset, uint64_t length, bool mutating, const char* op) const {
  if (closed_) return make_error(EBADF, std::string(op) + ": JS device is closed");
  return check_request(info(), offset, length, mutating, op);
}

Status JsDevice::js_error(int code, const char* op, uint64_t offset) const {
  return make_error(code, std::string(op) + " failed at offset " + std::to_string(offset) + ": " +
                              js::last_js_error());
}

Status JsDevice::read(uint64_t offset, ByteSpan buffer) {
  QK_TRY(check(offset, buffer.size(), false, "read"));
  if (buffer.empty()) return {};
  const int rc = js::device_read(id_, static_cast<double>(offset), buffer.data(),
                                 static_cast<double>(buffer.size()));
  if (rc != 0) return js_error(rc, "read", offset);
  return {};
}

Status JsDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  QK_TRY(check(offset, data.size(), true, "write"));
  if (!data.empty()) {
    const int rc = js::device_write(id_, static_cast<double>(offset), data.data(),
                                    static_cast<double>(data.size()));
    if (rc != 0) return js_error(rc, "write", offset);
  }
  if (flags.fua) return flush();
  return {};
}

Status JsDevice::flush() {
  if (closed_) return make_error(EBADF, "flush: JS device is closed");
  if (read_only_) return {};
  const int rc = js::device_flush(id_);
  if (rc != 0) return js_error(rc, "flush", 0);
  return {};
}

// A plain file cannot punch holes from here, so both become zero writes,
// in bounded pieces.
Status JsDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  QK_TRY(check(offset, length, true, "write_zeroes"));
  if (flags.fast_only) return make_error(ENOTSUP, "write_zeroes: a JS device has no fast zeroing");
  static const std::vector<uint8_t> zeroes(1u << 20, 0);
  while (length > 0) {
    const size_t n = length < zeroes.size() ? static_cast<size_t>(length) : zeroes.size();
    QK_TRY(write(offset, ConstByteSpan(zeroes.data(), n)));
    offset += n;
    length -= n;
  }
  if (flags.fua) return flush();
  return {};
}

Status JsDevice::discard(uint64_t offset, uint64_t length) {
  return write_zeroes(offset, length, {});
}

Status JsDevice::resize(uint64_t new_size) {
  if (closed_) return make_error(EBADF, "resize: JS device is closed");
  if (read_only_) return make_error(EROFS, "resize: device is read-only");
  if (new_size >= kMaxJsOffset)
    return make_error(EFBIG, "resize: " + std::to_string(new_size) + " bytes is beyond 2^53");
  const int rc = js::device_truncate(id_, static_cast<double>(new_size));
  if (rc != 0) return js_error(rc, "resize", new_size);
  size_ = new_size;
  return {};
}

Result<std::vector<Extent>> JsDevice::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check(offset, length, false, "extents"));
  if (length == 0) return std::vector<Extent>{};
  return std::vector<Extent>{Extent{offset, length, ExtentKind::data}};
}

Status JsDevice::close() {
  if (closed_) return {};
  Status flushed = flush();
  closed_ = true;
  const int rc = js::device_close(id_);
  if (!flushed.ok()) return flushed;
  if (rc != 0) return js_error(rc, "close", 0);
  return {};
}

}  // namespace qcowkit::wasm
