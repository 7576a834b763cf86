// What `qcowkit convert` asks of the core's copy engine (qcowkit/copy_engine.hpp):
// walk the source's extents, read and inspect chunks in parallel on the
// core's executor, and write them to the destination, skipping zeroes.
//
// * Holes and zero extents in the source are never read; the destination is
//   new and reads as zeroes already, so they cost nothing.
// * Inside data, runs of zero bytes at least `min_sparse` long are not
//   written either (qemu-img convert -S); min_sparse 0 writes every byte.
// * Chunks are read (and inspected) in parallel; with in_order they are
//   written in source order, so a qcow2 destination is laid out
//   sequentially, otherwise each chunk is written as soon as it is ready.
// * Compressed output: clusters are compressed in parallel; the packed
//   clusters are stored in source order, so compression never waits for the
//   image's metadata lock and the file is laid out sequentially.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "qcowkit/block_ops.hpp"

namespace qcowkit::cli {

struct CopyPipelineOptions {
  uint64_t min_sparse = 4096;        // bytes; 0: write everything, holes too
  unsigned threads = 0;              // requests in flight (-m); 0: 4
  uint32_t granule = 65536;          // destination cluster size (job alignment)
  // Compressed output, when both are set. compress_cluster runs on every
  // thread, once per non-zero cluster (granule; the short last one comes
  // zero-padded to a whole granule), on any thread, and returns the packed bytes, or an
  // empty vector when they would not be smaller. store_packed then runs in
  // source order, one call at a time; clusters that did not shrink are
  // written to dst as they are.
  std::function<Result<std::vector<uint8_t>>(ConstByteSpan cluster)> compress_cluster;
  std::function<Status(uint64_t offset, ConstByteSpan packed)> store_packed;
  // Write in source order (one writer at a time). A qcow2 destination wants
  // it: clusters are then allocated sequentially. A raw file does not care,
  // and takes writes from every thread at once. Compressed output is always
  // stored in order.
  bool in_order = true;
  ProgressFn progress;               // (done, total) in source bytes
};

// Copies `src` into `dst`, a fresh device of at least src's size (the bytes
// between src's end and dst's end are left as they are).
Status run_copy_pipeline(BlockDevice& src, BlockDevice& dst, const CopyPipelineOptions& options);

// Standard input as a source (convert -f raw - OUT): a pipe's size is known
// only at its end, so the destination (a new, empty, resizable device: a raw
// file or a qcow2 image) grows as the bytes arrive, block by block, in one
// sequential pass on this thread; its final size is the input's, rounded up
// to `size_alignment`. Granules (of `granule` bytes) that are all zero are
// not written (unless min_sparse is 0). With store_cluster set, every other
// granule goes through it (a compressed qcow2 store) instead of a write.
struct StreamInOptions {
  uint64_t min_sparse = 4096;
  uint32_t granule = 65536;
  uint64_t size_alignment = 1;
  std::function<Status(uint64_t offset, ConstByteSpan cluster)> store_cluster;
  std::function<void(uint64_t bytes_so_far)> progress;
};

// Returns the bytes read.
Result<uint64_t> copy_from_fd(int fd, BlockDevice& dst, const StreamInOptions& options);

}  // namespace qcowkit::cli
