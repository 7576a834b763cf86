// NextDevice: a BlockDevice over an nbdkit_next (the plugin, or the filters
// below us), so the core's BlockCache (the blockcache filter) and qcow2
// engine (the qcow2 filter) can sit on top of any nbdkit plugin.
//
// It asks the plugin what it can do once, when opened, and only passes
// flags down where the plugin supports them: FUA becomes a flush after the
// write when the plugin has no FUA, write_zeroes becomes written zero
// buffers when the plugin cannot zero, and a plugin without extents reports
// all data. When the server's thread model is not fully parallel, calls are
// serialized here, because write-back issues them from worker threads.
#pragma once

#include <memory>
#include <mutex>

#include "qcowkit/block_device.hpp"

extern "C" {
struct nbdkit_next_ops;
}

namespace qcowkit::filter {

// What the plugin below said it can do.
struct NextCaps {
  bool can_write = false;
  bool can_flush = false;
  bool can_trim = false;
  int can_zero = 0;      // NBDKIT_ZERO_NONE / EMULATE / NATIVE
  bool can_fast_zero = false;
  int can_fua = 0;       // NBDKIT_FUA_NONE / EMULATE / NATIVE
  bool can_extents = false;
  bool can_multi_conn = false;
  bool is_rotational = false;
};

class NextDevice final : public BlockDevice {
 public:
  // `next` must be prepared and outlive the device.
  static Result<std::unique_ptr<NextDevice>> open(nbdkit_next_ops* next, bool serialize);

  const NextCaps& caps() const { return caps_; }
  // True when discard() guarantees zeroes (it is a zero with may-trim).
  bool discard_reads_zero() const { return caps_.can_zero != 0; }

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override;

 private:
  NextDevice(nbdkit_next_ops* next, NextCaps caps, uint64_t size, uint32_t sector, bool serialize);
  Status check(uint64_t offset, uint64_t length, bool mutating, const char* op) const;
  Status flush_after(bool fua);  // the FUA emulation for plugins without it

  nbdkit_next_ops* next_;
  NextCaps caps_;
  uint64_t size_;
  uint32_t sector_size_;
  bool serialize_;
  mutable std::mutex serial_;  // held around plugin calls when serialize_
  bool closed_ = false;
};

}  // namespace qcowkit::filter
