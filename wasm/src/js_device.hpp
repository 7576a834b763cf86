// JsDevice: a BlockDevice whose bytes live on the JavaScript side.
//
// The JS object behind it (registered with Module.qkRegisterDevice, see
// wasm/js/devices.js) answers size, read, write, truncate and flush
// synchronously: a File read with FileReaderSync in a worker, an Origin
// Private File System sync access handle, a node file descriptor, or a
// Uint8Array in tests. The device is byte-addressed (sector size 1) and
// reports one data extent, since a plain file cannot tell us its holes.
#pragma once

#include "qcowkit/block_device.hpp"

namespace qcowkit::wasm {

class JsDevice final : public BlockDevice {
 public:
  // `id` is what Module.qkRegisterDevice returned. The size is asked once,
  // then tracked through resize().
  static Result<std::shared_ptr<JsDevice>> attach(int id);

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override;

  int id() const { return id_; }

 private:
  JsDevice(int id, uint64_t size, bool read_only) : id_(id), size_(size), read_only_(read_only) {}
  Status check(uint64_t offset, uint64_t length, bool mutating, const char* op) const;
  Status js_error(int code, const char* op, uint64_t offset) const;

  int id_;
  uint64_t size_;
  bool read_only_;
  bool closed_ = false;
};

}  // namespace qcowkit::wasm
