#include "js_bridge.hpp"

#include <emscripten.h>

#include <vector>

// Each body forwards to the JS runtime installed by wasm/js/*.js (post-js),
// which catches every JS exception and turns it into an errno.
EM_JS(double, qk_device_size, (int id), { return Module.qkBridge.deviceSize(id); });
EM_JS(int, qk_device_read_only, (int id), { return Module.qkBridge.deviceReadOnly(id); });
EM_JS(int, qk_device_read, (int id, double offset, uint8_t* ptr, double length),
      { return Module.qkBridge.deviceRead(id, offset, ptr, length); });
EM_JS(int, qk_device_write, (int id, double offset, const uint8_t* ptr, double length),
      { return Module.qkBridge.deviceWrite(id, offset, ptr, length); });
EM_JS(int, qk_device_truncate, (int id, double size), { return Module.qkBridge.deviceTruncate(id, size); });
EM_JS(int, qk_device_flush, (int id), { return Module.qkBridge.deviceFlush(id); });
EM_JS(int, qk_device_close, (int id), { return Module.qkBridge.deviceClose(id); });
EM_JS(int, qk_inflate_raw, (const uint8_t* src, double src_len, uint8_t* dst, double dst_len),
      { return Module.qkBridge.inflateRaw(src, src_len, dst, dst_len); });
EM_JS(int, qk_zstd_decode, (const uint8_t* src, double src_len, uint8_t* dst, double dst_len),
      { return Module.qkBridge.zstdDecode(src, src_len, dst, dst_len); });
EM_JS(double, qk_deflate_raw, (const uint8_t* src, double src_len, uint8_t* dst, double dst_cap),
      { return Module.qkBridge.deflateRaw(src, src_len, dst, dst_cap); });
EM_JS(int, qk_zlib_decode, (const uint8_t* src, double src_len, uint8_t* dst, double dst_len),
      { return Module.qkBridge.zlibDecode(src, src_len, dst, dst_len); });
EM_JS(double, qk_zlib_encode, (const uint8_t* src, double src_len, uint8_t* dst, double dst_cap),
      { return Module.qkBridge.zlibEncode(src, src_len, dst, dst_cap); });
EM_JS(int, qk_last_error_length, (), { return lengthBytesUTF8(Module.qkBridge.lastError) + 1; });
EM_JS(void, qk_last_error_copy, (char* buffer, int size),
      { stringToUTF8(Module.qkBridge.lastError, buffer, size); });

namespace qcowkit::wasm::js {

double device_size(int id) { return qk_device_size(id); }
int device_read_only(int id) { return qk_device_read_only(id); }
int device_read(int id, double offset, uint8_t* buffer, double length) {
  return qk_device_read(id, offset, buffer, length);
}
int device_write(int id, double offset, const uint8_t* data, double length) {
  return qk_device_write(id, offset, data, length);
}
int device_truncate(int id, double size) { return qk_device_truncate(id, size); }
int device_flush(int id) { return qk_device_flush(id); }
int device_close(int id) { return qk_device_close(id); }
int inflate_raw(const uint8_t* in, double in_length, uint8_t* out, double out_length) {
  return qk_inflate_raw(in, in_length, out, out_length);
}
int zstd_decode(const uint8_t* in, double in_length, uint8_t* out, double out_length) {
  return qk_zstd_decode(in, in_length, out, out_length);
}
double deflate_raw(const uint8_t* in, double in_length, uint8_t* out, double out_capacity) {
  return qk_deflate_raw(in, in_length, out, out_capacity);
}
int zlib_decode(const uint8_t* in, double in_length, uint8_t* out, double out_length) {
  return qk_zlib_decode(in, in_length, out, out_length);
}
double zlib_encode(const uint8_t* in, double in_length, uint8_t* out, double out_capacity) {
  return qk_zlib_encode(in, in_length, out, out_capacity);
}

std::string last_js_error() {
  std::vector<char> buffer(static_cast<size_t>(qk_last_error_length()));
  qk_last_error_copy(buffer.data(), static_cast<int>(buffer.size()));
  return std::string(buffer.data());
}

}  // namespace qcowkit::wasm::js
