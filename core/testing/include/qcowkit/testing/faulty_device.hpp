// FaultyDevice: a test wrapper that injects failures into another device.
//
// * Fail the Nth operation (of chosen kinds) with a chosen errno, once or
//   from then on; or fail every operation touching a byte range.
// * Simulate a volatile write cache and a power cut: writes, zeroes,
//   discards and resizes are held in a log until flush() (or a FUA write)
//   makes them durable in the wrapped device; power_cut() throws the log away
//   (or keeps a random subset of it, as a disk that reorders writes might).
//
// Reads see the latest data (durable state with the log applied on top).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

enum class FaultOp : unsigned {
  read = 1u << 0,
  write = 1u << 1,
  flush = 1u << 2,
  discard = 1u << 3,
  write_zeroes = 1u << 4,
  resize = 1u << 5,
  extents = 1u << 6,
  all = 0x7fu,
  mutating = write | flush | discard | write_zeroes | resize,
};

class FaultyDevice final : public BlockDevice {
 public:
  // `durable` is the device the surviving writes end up in.
  explicit FaultyDevice(std::shared_ptr<BlockDevice> durable, bool volatile_cache = true);

  // The `nth` (1-based, counted from now) operation matching `ops` fails with
  // `error`; with `sticky`, every matching operation after it fails too.
  void fail_nth(uint64_t nth, int error, FaultOp ops = FaultOp::all, bool sticky = false);
  // Every operation overlapping [offset, offset + length) fails with `error`.
  void fail_range(uint64_t offset, uint64_t length, int error, FaultOp ops = FaultOp::all);
  // After `count` more successful mutating operations, the device loses power:
  // it drops its unflushed log and fails everything with EIO until revived.
  void cut_power_after(uint64_t count);
  void clear_faults();

  // Loses power now: unflushed operations are dropped, except that with
  // keep_fraction > 0 each one survives with that probability (seeded).
  void power_cut(double keep_fraction = 0.0, uint64_t seed = 0);
  // After a power cut: accept operations again (the durable state remains).
  void revive();
  bool powered() const;

  uint64_t operations() const;       // operations attempted so far
  uint64_t mutating_operations() const;
  size_t unflushed_operations() const;

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
  struct PendingOp {
    FaultOp kind;
    uint64_t offset = 0;
    uint64_t length = 0;  // for resize: the new size
    std::vector<uint8_t> data;
  };
  Status admit(FaultOp op, uint64_t offset, uint64_t length);
  Status apply(const PendingOp& op);
  Status flush_log_locked();
  void note_mutation_locked();

  std::shared_ptr<BlockDevice> durable_;
  bool volatile_cache_;
  mutable std::mutex mutex_;
  std::vector<PendingOp> log_;
  uint64_t size_;  // size as the writer sees it (log applied)

  uint64_t op_count_ = 0;
  uint64_t mutating_count_ = 0;
  std::optional<uint64_t> fail_at_;  // value of matched_count_ that fails
  uint64_t matched_count_ = 0;
  int fail_error_ = EIO;
  FaultOp fail_ops_ = FaultOp::all;
  bool fail_sticky_ = false;
  bool failing_ = false;
  struct RangeFault { uint64_t offset, length; int error; FaultOp ops; };
  std::vector<RangeFault> range_faults_;
  std::optional<uint64_t> power_budget_;
  bool powered_ = true;
  bool closed_ = false;
};

}  // namespace qcowkit
