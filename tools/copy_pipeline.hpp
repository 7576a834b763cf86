// The copy engine behind `qcowkit convert`: walks the source's extents,
// reads and inspects chunks on several threads, and writes them to the
// destination, skipping zeroes.
//
// * Holes and zero extents in the source are never read; the destination is
//   new and reads as zeroes already, so they cost nothing.
// * Inside data, runs of zero bytes at least `min_sparse` long are not
//   written either (qemu-img convert -S); min_sparse 0 writes every byte.
// * Uncompressed chunks are written in source order, so a qcow2 destination
//   is laid out sequentially, while reading runs ahead on every thread.
// * Compressed output: each thread hands whole clusters to store_cluster
//   (which compresses and stores them), in parallel.
#pragma once

#include <cstdint>
#include <functional>

#include "qcowkit/block_ops.hpp"

namespace qcowkit::cli {

struct CopyPipelineOptions {
  uint64_t min_sparse = 4096;        // bytes; 0: write everything, holes too
  unsigned threads = 0;              // 0: one per core
  uint32_t granule = 65536;          // destination cluster size (job alignment)
  // Set: every non-zero cluster (granule) goes here instead of dst, from
  // several threads at once. convert binds it to Qcow2Image::write_compressed.
  std::function<Status(uint64_t offset, ConstByteSpan cluster)> store_cluster;
  ProgressFn progress;               // (done, total) in source bytes
};

// Copies `src` into `dst`, a fresh device of at least src's size (the bytes
// between src's end and dst's end are left as they are).
Status run_copy_pipeline(BlockDevice& src, BlockDevice& dst, const CopyPipelineOptions& options);

}  // namespace qcowkit::cli
