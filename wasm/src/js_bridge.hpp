// The few JavaScript functions the C++ side calls (defined with EM_JS in
// js_bridge.cpp, implemented in wasm/js/devices.js and wasm/js/codecs.js).
// Every call returns 0 on success or a positive errno; the message of the
// last failure is kept on the JS side and fetched with last_js_error().
#pragma once

#include <cstdint>
#include <string>

namespace qcowkit::wasm::js {

// Devices. Offsets and lengths travel as doubles: exact up to 2^53 bytes.
double device_size(int id);          // < 0: the device is not registered
int device_read_only(int id);        // 1 or 0
int device_read(int id, double offset, uint8_t* buffer, double length);
int device_write(int id, double offset, const uint8_t* data, double length);
int device_truncate(int id, double size);
int device_flush(int id);
int device_close(int id);

// Codecs. decode_* fill exactly out_length bytes or fail.
int inflate_raw(const uint8_t* in, double in_length, uint8_t* out, double out_length);
int zstd_decode(const uint8_t* in, double in_length, uint8_t* out, double out_length);
// Returns the compressed length (> 0), 0 when it would not fit in
// out_capacity, or minus an errno.
double deflate_raw(const uint8_t* in, double in_length, uint8_t* out, double out_capacity);
// zlib streams (RFC 1950): decode fills exactly out_length bytes (bytes
// after the stream are ignored); encode returns as deflate_raw does.
int zlib_decode(const uint8_t* in, double in_length, uint8_t* out, double out_length);
double zlib_encode(const uint8_t* in, double in_length, uint8_t* out, double out_capacity);

// The message of the last failed call above.
std::string last_js_error();

}  // namespace qcowkit::wasm::js
