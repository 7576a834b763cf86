// AlignedDevice: byte-granular access to a device that takes only whole
// sectors, such as the plugin below an nbdkit filter when it says its
// minimum block size is 512 or 4096 (an NBD server on an O_DIRECT file, or
// `--filter=blocksize-policy blocksize-minimum=512`). The qcow2 engine
// reads an 8-byte L2 entry or a 104-byte header where it lies; this layer
// lets it do so over such a device.
//
// Aligned requests pass straight through. A request with an unaligned head
// or tail reads the sectors at its edges and writes them back whole with
// the new bytes in place (read-modify-write). Zeroing and discarding write
// zeroes into the partial edge sectors and pass the whole sectors between
// them down as zeroing and discarding.
//
// The size is the device's size rounded down to a whole sector: a partial
// last sector cannot be reached below either.
//
// Thread safety: safe from many threads. A read-modify-write must not let
// another write into its sector land between its read and its write, or
// that write's bytes would be put back to what they were. The qcow2 engine
// may write overlapping ranges at once (a table written whole while another
// thread writes one of its entries), so every write registers the sectors
// it covers while it is in flight, and an edge sector is read-modify-written
// only while no other write covers it (and no write starts on it until it
// is done). Writes of whole sectors wait only for read-modify-writes of
// their sectors, never for each other. Ordering is the device's: each call
// returns after the writes it made have returned, so flush and FUA mean
// what they mean below.
//
// Ownership: shares the device below and does not close it (close()
// flushes); its owner does.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <vector>

#include "qcowkit/block_device.hpp"
#include "qcowkit/mutex.hpp"

namespace qcowkit {

class AlignedDevice final : public BlockDevice {
 public:
  // `below` itself when its sector size is 1; otherwise an AlignedDevice
  // over it.
  static std::shared_ptr<BlockDevice> over(std::shared_ptr<BlockDevice> below);

  explicit AlignedDevice(std::shared_ptr<BlockDevice> below);

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override { return below_->flush(); }
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override { return below_->resize(new_size); }
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  FileLocation file_location(uint64_t offset) override { return below_->file_location(offset); }
  void advise_appends() override { below_->advise_appends(); }
  Status close() override { return below_->flush(); }

 private:
  // Requests whose sectors span at most this many bytes go down as one
  // read or write through a bounce buffer; larger ones in three parts
  // (edges through the bounce buffer, the aligned middle in place).
  static constexpr uint64_t kBounceLimit = 1 << 20;
  static constexpr uint64_t kNoSector = UINT64_MAX;

  // A write in flight: it covers sectors [first, end) and read-modify-writes
  // the sectors `edges` names (kNoSector: none).
  struct InFlight {
    uint64_t first, end;
    uint64_t edges[2];
    bool operator==(const InFlight&) const = default;
  };
  class Registration;  // registers an InFlight for its scope (waiting first)

  // Writes `data` (or zeroes, when data is null) at `offset`, which lies
  // inside one run of sectors small enough to bounce: reads the partial
  // edge sectors, patches, and writes the run back.
  Status patch(uint64_t offset, uint64_t length, const uint8_t* data, bool fua);
  // Writes whole sectors: `op` does the device call while they are registered.
  template <typename Op>
  Status whole(uint64_t offset, uint64_t length, Op op);
  // Changes [offset, offset + length): the partial sectors at its edges
  // patched with `data` (null: zeroes), the whole sectors between them,
  // [begin, end), by `middle(begin, end)`.
  template <typename Middle>
  Status split(uint64_t offset, uint64_t length, const uint8_t* data, bool fua, Middle middle);
  uint64_t down(uint64_t x) const { return x - x % sector_; }  // to the sector's start
  uint64_t up(uint64_t x) const { return down(x + sector_ - 1); }  // to a sector's end
  bool conflicts_locked(const InFlight& w) const QK_REQUIRES(mutex_);

  std::shared_ptr<BlockDevice> below_;
  const uint64_t sector_;
  Mutex mutex_;
  std::condition_variable done_;  // a registration ended
  std::vector<InFlight> in_flight_ QK_GUARDED_BY(mutex_);
};

}  // namespace qcowkit
