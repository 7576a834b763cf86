#include "qcowkit/device_sink.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include "copy/request_geometry.hpp"
#include "copy/zero_runs.hpp"

namespace qcowkit {

DeviceSink::DeviceSink(BlockDevice& destination, DeviceSinkOptions options)
    : destination_(destination),
      options_(std::move(options)),
      destination_size_(destination.info().size),
      sector_(std::max<uint64_t>(destination.info().sector_size, 1)) {}

Status DeviceSink::prepare(CopyChunk& chunk) {
  chunk.pieces.clear();
  if (!chunk.mapped) {
    chunk.pieces.push_back({0, chunk.length, true, {}});
    return {};
  }
  // A source whose end is not a whole destination sector: the last chunk
  // covers the rest of that sector too, as zeroes.
  uint64_t length = chunk.length;
  const uint64_t end = chunk.offset + chunk.length;
  if (options_.source_size && end == options_.source_size && destination_size_ > end) {
    const uint64_t padded = std::min(destination_size_, (end + sector_ - 1) / sector_ * sector_);
    length = padded - chunk.offset;
    if (chunk.data.size() < length) chunk.data.resize(length);
    std::fill(chunk.data.begin() + chunk.length, chunk.data.begin() + length, 0);
  }
  if (compressing()) return compress_clusters(chunk, length);
  engine::ZeroRule rule;
  rule.min_run = options_.min_zero_run;
  rule.unit = std::lcm<uint64_t>(512, sector_);
  rule.alignment = sector_;
  engine::split_zero_runs(ConstByteSpan(chunk.data.data(), length), 0, rule, chunk.pieces);
  return {};
}

// Whole clusters, compressed on this (any) thread; all-zero clusters are
// left unwritten unless every byte must be written.
Status DeviceSink::compress_clusters(CopyChunk& chunk, uint64_t length) {
  const uint64_t cluster = options_.cluster_size;
  std::vector<uint8_t> padded;
  for (uint64_t pos = 0; pos < length; pos += cluster) {
    const uint64_t n = std::min(cluster, length - pos);
    ConstByteSpan bytes(chunk.data.data() + pos, n);
    if (options_.min_zero_run && is_all_zero(bytes)) {
      chunk.pieces.push_back({pos, n, true, {}});
      continue;
    }
    if (n < cluster) {
      padded.assign(cluster, 0);
      std::copy(bytes.begin(), bytes.end(), padded.begin());
      bytes = ConstByteSpan(padded);
    }
    auto packed = options_.compress_cluster(bytes);
    if (!packed.ok())
      return with_context(packed.error(), "compressing offset " + std::to_string(chunk.offset + pos));
    chunk.pieces.push_back({pos, n, false, std::move(packed).value()});
  }
  return {};
}

Result<CopySink::Flow> DeviceSink::commit(CopyChunk& chunk) {
  const char* op = options_.operation;
  for (const CopyChunk::Piece& piece : chunk.pieces) {
    const uint64_t offset = chunk.offset + piece.start;
    Status st;
    const char* what = "write";
    if (piece.zero) {
      if (options_.destination_is_zero) continue;
      what = "write_zeroes";
      st = destination_.write_zeroes(offset, piece.length, ZeroFlags{.may_trim = true});
    } else if (!piece.packed.empty()) {
      what = "store of a compressed cluster";
      st = options_.store_packed(offset, ConstByteSpan(piece.packed));
    } else {
      st = destination_.write(offset, ConstByteSpan(chunk.data.data() + piece.start, piece.length));
    }
    if (!st.ok()) return engine::failed_at(op, what, offset, st.error());
  }
  return Flow::proceed;
}

Status DeviceSink::finish() {
  if (!options_.flush_at_end) return {};
  if (auto st = destination_.flush(); !st.ok())
    return make_error(st.error().code, std::string(options_.operation) + ": flush of the destination failed: " +
                                           st.error().message);
  return {};
}

}  // namespace qcowkit
