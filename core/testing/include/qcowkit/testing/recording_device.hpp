// RecordingDevice: a test BlockDevice modelling a disk with a volatile write
// cache, for crash-consistency tests.
//
// It keeps two images of the disk: the durable bytes (what survives a power
// cut for certain) and the current bytes (what reads return). Every write,
// write_zeroes, discard and resize since the last barrier is kept in a log,
// in the order the device accepted them. flush() is the barrier: the whole
// log becomes durable. A write with fua is durable by itself, but earlier
// unflushed operations stay volatile (it is logged and marked "forced", so a
// crash state always keeps it and applies it after everything before it).
//
// pending() captures, at one instant, the durable bytes plus a copy of the
// log; crash_states.hpp turns such a capture into crash states (the durable
// bytes plus any subset of the log, with torn writes). Because a capture is a
// consistent cut taken under the device's lock, it can be taken at any moment,
// including from the hook while other requests are in flight.
//
// The hook is called from inside every operation (before it takes effect and
// after), on the calling thread and without the device's lock held, so it may
// call pending() (or anything but a mutating call on this device), sleep to
// widen a race window, or check a crash state while other threads carry on.
//
// Storage is flat (two byte vectors): meant for images of a few MiB.
// Thread-safe: any number of threads may call it at once; the hook must be
// installed before they start.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit::testing {

// The granularity at which a disk may tear a write: a 512-byte sector is
// either all old or all new after a power cut.
inline constexpr uint64_t kAtomicSector = 512;

enum class DeviceOp : uint8_t { read, write, write_zeroes, discard, flush, resize, extents };
const char* to_string(DeviceOp op);

// One unflushed operation. Zeroes and discards both leave zeroes here (the
// device is a plain disk, as MemoryDevice is).
struct LoggedOp {
  DeviceOp op = DeviceOp::write;  // write, write_zeroes, discard or resize
  uint64_t offset = 0;
  uint64_t length = 0;            // resize: the new size
  bool forced = false;            // fua: durable when it returned
  uint64_t sequence = 0;          // the operation's number (DeviceEvent::sequence)
  std::shared_ptr<const std::vector<uint8_t>> data;  // write: the bytes (shared, never changed)
};

// A consistent cut: what is durable and what is still in the volatile cache.
struct PendingState {
  std::vector<uint8_t> durable;  // durable bytes; size() is the durable size
  std::vector<LoggedOp> log;     // oldest first
  uint64_t sequence = 0;         // operations started before the cut
};

struct DeviceEvent {
  enum class Phase : uint8_t { before, after };
  Phase phase = Phase::before;
  DeviceOp op = DeviceOp::read;
  uint64_t offset = 0, length = 0;
  bool fua = false;
  uint64_t sequence = 0;  // numbers every operation, in the order they started
  bool ok = true;         // after: whether it succeeded
};

using DeviceHook = std::function<void(const DeviceEvent&)>;

class RecordingDevice final : public BlockDevice {
 public:
  // A device holding `initial`, all of it durable.
  explicit RecordingDevice(std::vector<uint8_t> initial = {}, uint32_t sector_size = 1);

  // Installs the hook (nullptr removes it). Not to be called while requests run.
  void set_hook(DeviceHook hook);

  PendingState pending() const;
  std::vector<uint8_t> durable_bytes() const;
  std::vector<uint8_t> current_bytes() const;
  size_t unflushed_operations() const;
  uint64_t flushes() const;    // flush() calls that succeeded
  uint64_t operations() const; // operations started so far

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  // Makes everything durable; later calls fail with EBADF. The bytes stay
  // readable through durable_bytes().
  Status close() override;

 private:
  // Runs `body` between the hook's before and after calls.
  Status around(DeviceOp op, uint64_t offset, uint64_t length, bool fua,
                const std::function<Status(uint64_t sequence)>& body);
  Status log_locked(LoggedOp op);
  void barrier_locked();

  DeviceHook hook_;
  uint32_t sector_size_;
  mutable std::mutex mutex_;
  std::vector<uint8_t> durable_;  // guarded by mutex_
  std::vector<uint8_t> current_;  // guarded by mutex_
  std::vector<LoggedOp> log_;     // guarded by mutex_
  uint64_t sequence_ = 0;         // guarded by mutex_
  uint64_t barriers_ = 0;         // guarded by mutex_
  bool closed_ = false;           // guarded by mutex_
};

// Applies one logged operation to `bytes` (growing it when a write reaches
// past its end, as a file grows). With `sectors`, only the kAtomicSector
// pieces whose flag is set are applied (a torn write); resize ignores it.
void apply_logged(std::vector<uint8_t>& bytes, const LoggedOp& op,
                  const std::vector<bool>* sectors = nullptr);

// How many kAtomicSector pieces an operation covers (0 for resize).
uint64_t atomic_pieces(const LoggedOp& op);

}  // namespace qcowkit::testing
