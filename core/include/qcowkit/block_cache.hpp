// BlockCache: a bounded write-back cache that is itself a BlockDevice over
// any BlockDevice (core layer 4).
//
// * Writes are copied into fixed-size pages and acknowledged; reads merge
//   cached pages with the device's data. Pages and the copies write-back
//   makes of them together stay within max_size bytes (a quarter of it, at
//   most writeback_parallelism x max_writeback_bytes, is set aside for the
//   copies).
// * Write-back happens on flush() (every page dirty when the flush began,
//   then the device's flush), on close(), and when the cache is full (the
//   oldest dirty pages, enough to make room, not the whole cache). It goes
//   in offset order, adjacent pages coalesced into one device write, several
//   writes in flight at once where threads exist and the device is slow
//   enough (over 50 us a write) for that to pay.
// * A failed write-back leaves the pages dirty and returns the error from
//   the call that needed it (flush, a write that needed room, close); a
//   later call retries. Nothing acknowledged is silently dropped.
// * A write with fua is written back (with fua) before it returns.
// * discard() and write_zeroes() drop the cached pages they cover and pass
//   through to the device at once; the cache remembers the range as zero
//   for extent queries until a write touches it.
// * Writes larger than a quarter of the page space go straight to the device
//   (after updating cached pages they touch), so one huge write cannot
//   flush the whole cache. So does a write of at least an eighth of
//   max_writeback_bytes that finds the cache full of dirty pages (and not
//   holding its pages): the writer would wait for a device write to make
//   room anyway, write-back could join only a few such writes into one,
//   and caching it would copy its bytes twice more.
// * When the cache is full of dirty pages and the device answers about as
//   fast as memory (the fastest of its last 32 to 64 writes, by write-back
//   or straight, cost under 50 us beyond 2 GB/s for its bytes: a writer
//   that lost the CPU for a while does not count), a write to pages not
//   cached goes straight
//   to the device too, instead of writing back older pages to make room:
//   with no round trip to hide, that would only copy every byte twice more.
// * Extents: dirty pages are data; ranges the cache zeroed are zero/hole;
//   the rest is the device's answer, or with ExtentMode::scan, blocks of
//   scan_block bytes read and found all zero are reported as zero (and
//   remembered until a write touches them).
// * Thread-safe. Without QCOWKIT_HAVE_THREADS (the browser) write-back runs
//   one request at a time on the calling thread.
#pragma once

#include <cstdint>
#include <memory>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

enum class CachePolicy : uint8_t {
  write_back,     // writes stay in memory until flush, close or a full cache
  write_through,  // every write is written back before it is acknowledged
  unsafe,         // like write_back, but flush() does nothing (close still writes back)
};

enum class ExtentMode : uint8_t {
  passthrough,  // the device's extents, merged with what the cache knows
  scan,         // as passthrough, and data ranges are read to find zero blocks
  off,          // everything is reported as data
};

struct BlockCacheOptions {
  uint64_t max_size = 64u << 20;      // bytes of memory for pages and write-back copies
  uint32_t page_size = 4096;          // power of two, multiple of the sector size
  CachePolicy policy = CachePolicy::write_back;
  bool cache_reads = false;           // keep clean pages read from the device
  ExtentMode extents = ExtentMode::passthrough;
  uint64_t scan_block = 64u << 10;    // granularity of ExtentMode::scan
  uint64_t scan_limit = 64u << 20;    // bytes one extents() call may read while scanning
  unsigned writeback_parallelism = 16;  // device writes in flight during write-back
  uint64_t max_writeback_bytes = 1u << 20;  // largest coalesced write
  // Whether the device's discard() leaves zeroes, as the BlockDevice contract
  // says. Adapters over devices whose discard is only advisory (NBD trim)
  // set it false, and extents then never claim a discarded range is zero.
  bool discard_reads_zero = true;
  // Whether writes go straight to a device that answers about as fast as
  // memory (the least per-write overhead recently measured under 50 us),
  // cached pages they cover dropped or brought in step, full cache or not.
  // Caching them would cost two more copies of their bytes and hide no
  // latency. false: only writes to pages not cached go around, and only
  // once the cache is full of dirty pages (tests over fast in-memory
  // devices use it to keep writes cached).
  bool write_around_fast_device = true;
};

struct BlockCacheStats {
  uint64_t read_hits = 0;          // reads served wholly from the cache
  uint64_t read_misses = 0;        // reads that needed the device
  uint64_t write_requests = 0;
  uint64_t direct_writes = 0;       // writes sent straight to the device (large, or around a full cache)
  uint64_t bytes_written_back = 0;
  uint64_t writeback_requests = 0;  // coalesced device writes issued
  uint64_t forced_writebacks = 0;   // write-back rounds forced by a full cache
  uint64_t writeback_errors = 0;
  uint64_t scanned_bytes = 0;       // read by ExtentMode::scan
  uint64_t cached_bytes = 0;        // page data held now
  uint64_t dirty_bytes = 0;
  uint64_t peak_cached_bytes = 0;
  // Peak of everything the cache allocates for data: pages, spare page
  // buffers and write-back copies in flight. Never above max_size.
  uint64_t peak_memory_bytes = 0;
};

class BlockCache final : public BlockDevice {
 public:
  // Fails with EINVAL when the options make no sense for the device (page
  // size not a power of two or not a multiple of its sector size, a memory
  // bound smaller than a few pages, ...).
  static Result<std::unique_ptr<BlockCache>> create(std::shared_ptr<BlockDevice> device,
                                                    const BlockCacheOptions& options = {});
  ~BlockCache() override;

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  // Passed on: growth goes straight to the device (resize is a pass-through).
  void advise_appends() override;
  // Writes everything back and flushes the device, then closes the cache.
  // The device stays open (its opener closes it), as under a Qcow2Image.
  // When write-back fails the cache stays open with its data, so close()
  // can be retried.
  Status close() override;

  // Writes back every dirty page and flushes the device, whatever the
  // policy (flush() does nothing under CachePolicy::unsafe; this does).
  Status write_back_all();

  BlockCacheStats stats() const;
  const BlockCacheOptions& options() const;
  BlockDevice& device();

 private:
  struct State;
  explicit BlockCache(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

const char* to_string(CachePolicy policy);
const char* to_string(ExtentMode mode);

}  // namespace qcowkit
