// CopyEngine: the core's one way of streaming a device's contents somewhere
// (the model is QEMU's block-copy, which all its block jobs share). convert,
// compare, sha256, the browser conversion and the block operations (copy,
// sparse_copy, compare, fold*) are all a CopyEngine with a different sink.
//
// How it works:
//  * The source is walked by its extents (data / zero / hole). Ranges that
//    read as zeroes are never read: they are skipped, or handed to the sink
//    as unmapped chunks when it asks for them. Ranges the source maps are
//    cut along a grid of `chunk_size` bytes and read.
//  * Each chunk is read, then prepared by the sink (zero detection,
//    compression, comparison: CPU work) with up to `workers` chunks in
//    flight at once, then committed by the sink (writes, hashing).
//  * In order (the default): commits happen one at a time in source order;
//    chunks prepared early wait in a bounded queue. Any order (`in_order`
//    false): each chunk is committed as soon as it is prepared, possibly on
//    several threads at once.
//  * Natively, run() does all that on the shared Executor's threads. In the
//    browser (no threads) step(budget) does a bounded amount of it on the
//    caller's thread, so a worker can report progress and take a cancel
//    between steps. run() works there too, as a loop of steps.
//  * Memory is bounded by (workers + queued chunks) x chunk_size, whatever
//    the device size.
//
// Errors carry the offset of the chunk that failed. In order, the error
// returned is the first in source order (a chunk's read or prepare failure
// is reported when its turn to commit comes); in any order, the first seen.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "qcowkit/block_device.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {

// One piece of the source on its way through the engine.
struct CopyChunk {
  uint64_t offset = 0, length = 0;  // source range
  // False: the source reads as zeroes here; nothing was read and `data` is
  // empty. Only sinks that ask for unmapped chunks see these.
  bool mapped = true;
  std::vector<uint8_t> data;  // the bytes read (at least `length`; a sink may grow it)

  // For the sink's prepare -> commit hand-over: what to write.
  struct Piece {
    uint64_t start = 0, length = 0;  // relative to `offset`
    bool zero = false;               // reads as zeroes: skip or write_zeroes
    std::vector<uint8_t> packed;     // non-empty: compressed bytes for one cluster
  };
  std::vector<Piece> pieces;
  std::optional<uint64_t> found;  // a finding prepare hands to commit (compare's difference)
};

// What the engine does with the chunks. Owned by the caller; must outlive
// the engine's run() or last step().
class CopySink {
 public:
  enum class Flow { proceed, stop };
  virtual ~CopySink() = default;
  // Runs on any thread, several chunks at once. Must not assume an order.
  virtual Status prepare(CopyChunk&) { return {}; }
  // In order: one call at a time, in source order. Any order: as chunks are
  // prepared, possibly at once on several threads. `stop` ends the copy
  // successfully (compare found a difference).
  virtual Result<Flow> commit(CopyChunk& chunk) = 0;
  // After the last commit of a copy that was not stopped (a flush, say).
  virtual Status finish() { return {}; }
};

struct CopyEngineOptions {
  // The source range to copy; `end` is clamped to the source size.
  uint64_t begin = 0, end = UINT64_MAX;
  // Bytes per read; chunks never straddle a multiple of it. Must be a
  // multiple of `alignment`.
  uint64_t chunk_size = 1u << 20;
  // Every request is a multiple of this (the devices' common sector size).
  uint64_t alignment = 1;
  // Unmapped ranges shorter than this, or not aligned to it, are read as
  // data (a qcow2 destination's cluster size); 0 means `alignment`.
  uint64_t granule = 0;
  // False: read every byte, whatever the extents say (copy, fold).
  bool use_extents = true;
  // False: nothing is read; each chunk's `data` holds `length` bytes of
  // unspecified content for the sink to fill (fill_random generates them).
  bool read_source = true;
  // Hand unmapped ranges to the sink (as mapped == false chunks of at most
  // max_unmapped_chunk bytes) instead of skipping them.
  bool deliver_unmapped = false;
  uint64_t max_unmapped_chunk = uint64_t{1} << 30;
  // A range counts as mapped when this device maps it too (compare).
  BlockDevice* also_mapped = nullptr;
  // Chunks read and prepared at once; 0: kDefaultWorkers. One without threads.
  unsigned workers = 0;
  bool in_order = true;
  // Prepared chunks that may wait for their turn; 0: twice the workers.
  size_t max_queued = 0;
  // Names the operation in messages: "<operation>: read failed at offset N".
  const char* operation = "copy";
  ProgressFn progress;  // (bytes of the range done, bytes of the range)
};

struct CopyProgress {
  uint64_t done = 0, total = 0;  // bytes of the range walked
  bool finished = false;         // every chunk committed and the sink finished
};

class CopyEngine {
 public:
  static constexpr unsigned kDefaultWorkers = 4;

  // Checks the options (EINVAL) but touches no device yet.
  static Result<std::unique_ptr<CopyEngine>> create(BlockDevice& source, CopySink& sink,
                                                    CopyEngineOptions options);
  ~CopyEngine();

  // Runs to the end (or the first error, or cancel()). Natively on the
  // Executor's threads plus the caller's.
  Status run();

  // Cooperative: does about `budget` bytes of the range on this thread (at
  // least one chunk), then returns. After the last chunk it also finishes
  // the sink and reports `finished`. Do not mix with run().
  Result<CopyProgress> step(uint64_t budget);

  // From any thread: the copy stops as soon as it can; run() and step() then
  // fail with ECANCELED.
  void cancel();

  CopyProgress progress() const;

 private:
  struct State;
  explicit CopyEngine(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace qcowkit
