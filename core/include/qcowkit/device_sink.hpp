// DeviceSink: the copy engine's sink that writes into a BlockDevice. It is
// what convert, copy, sparse_copy and the browser conversion share:
//  * prepare (any thread): the one zero-detection rule splits each chunk
//    into data and zero pieces; with a compression stage, each cluster is
//    compressed instead (all-zero clusters are left out);
//  * commit: data pieces are written, zero pieces and unmapped chunks are
//    skipped on a destination known to read as zeroes, or become
//    write_zeroes(may_trim) otherwise; packed clusters go to store_packed.
//
// Thread safety: prepare may run on several threads at once; commit on
// several at once only when the engine runs in any order without a
// compression stage (the destination must then take concurrent writes, as
// every core device does). Holds a reference to the destination, which must
// outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "qcowkit/copy_engine.hpp"

namespace qcowkit {

struct DeviceSinkOptions {
  // Zero runs at least this long are not written as data (qemu-img's -S);
  // 0 writes every byte read as data.
  uint64_t min_zero_run = 4096;
  // The destination reads as zeroes already (a new image): zero runs and
  // unmapped chunks need no request at all. Otherwise they are zeroed with
  // write_zeroes(may_trim), so holes stay holes where the device allows.
  bool destination_is_zero = true;
  // The source's size, when the destination is longer (rounded up to its
  // sector size): the chunk ending there is padded with zeroes to the next
  // destination sector. 0: no padding.
  uint64_t source_size = 0;
  // Compression stage, when both are set: compress_cluster packs one
  // cluster of `cluster_size` bytes (a short last one comes zero-padded),
  // returning an empty vector when it would not shrink (it is then written
  // plainly); store_packed stores the packed bytes for the cluster at
  // `offset`, one call at a time, in the engine's commit order.
  uint64_t cluster_size = 65536;
  std::function<Result<std::vector<uint8_t>>(ConstByteSpan cluster)> compress_cluster;
  std::function<Status(uint64_t offset, ConstByteSpan packed)> store_packed;
  // finish() flushes the destination.
  bool flush_at_end = false;
  // Names the writing side in messages: "<operation>: write failed at offset N".
  const char* operation = "copy";
};

class DeviceSink : public CopySink {
 public:
  DeviceSink(BlockDevice& destination, DeviceSinkOptions options);

  Status prepare(CopyChunk& chunk) override;
  Result<Flow> commit(CopyChunk& chunk) override;
  Status finish() override;

  bool compressing() const { return options_.compress_cluster && options_.store_packed; }

 private:
  Status compress_clusters(CopyChunk& chunk, uint64_t length);

  BlockDevice& destination_;
  const DeviceSinkOptions options_;
  const uint64_t destination_size_;
  const uint64_t sector_;
};

}  // namespace qcowkit
