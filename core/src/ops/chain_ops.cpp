// Backing-chain operations (see chain_ops.hpp).
#include "qcowkit/chain_ops.hpp"

#include <algorithm>
#include <cstring>

#include "qcowkit/copy_engine.hpp"
#include "qcowkit/device_sink.hpp"

namespace qcowkit {
namespace {

constexpr uint64_t kChunk = 1u << 20;

// Writes the parts of [from, to) where `image` (which defers this range to
// its backing file) and `fresh` differ into the image.
Status copy_differences(BlockDevice& image, BlockDevice* fresh, uint64_t cluster, uint64_t from,
                        uint64_t to) {
  const uint64_t fresh_size = fresh ? fresh->info().size : 0;
  std::vector<uint8_t> old_bytes(kChunk), new_bytes(kChunk);
  for (uint64_t pos = from; pos < to;) {
    const uint64_t n = std::min(kChunk - pos % cluster, to - pos);
    QK_TRY(image.read(pos, ByteSpan(old_bytes.data(), n)));
    std::fill(new_bytes.begin(), new_bytes.begin() + n, 0);
    if (fresh && pos < fresh_size)
      QK_TRY(fresh->read(pos, ByteSpan(new_bytes.data(), std::min(n, fresh_size - pos))));
    for (uint64_t at = 0; at < n;) {
      const uint64_t piece = std::min(n - at, cluster - (pos + at) % cluster);
      if (std::memcmp(old_bytes.data() + at, new_bytes.data() + at, piece) != 0) {
        // Zeroes over a new backing file's data are written as zeroes, so
        // that they take no data cluster.
        const bool zeroes = std::all_of(old_bytes.begin() + at, old_bytes.begin() + at + piece,
                                        [](uint8_t b) { return b == 0; });
        QK_TRY(zeroes ? image.write_zeroes(pos + at, piece)
                      : image.write(pos + at, ConstByteSpan(old_bytes.data() + at, piece)));
      }
      at += piece;
    }
    pos += n;
  }
  return {};
}

}  // namespace

Result<std::vector<MapEntry>> own_allocations(Qcow2Image& image) {
  const uint64_t size = image.info().size;
  QK_ASSIGN_OR_RETURN(std::vector<MapEntry> map, image.map(0, size));
  std::vector<MapEntry> own;
  for (const MapEntry& e : map)
    if (e.present && e.depth == 0 && e.length > 0) own.push_back(e);
  return own;
}

Status commit_layer(Qcow2Image& layer, BlockDevice& base, uint64_t size) {
  QK_ASSIGN_OR_RETURN(std::vector<MapEntry> own, own_allocations(layer));
  for (const MapEntry& e : own) {
    if (e.offset >= size) break;
    const uint64_t length = std::min(e.length, size - e.offset);
    if (e.zero && !e.data) {
      QK_TRY(base.write_zeroes(e.offset, length));
      continue;
    }
    // The layer's own data: every byte is copied (the layer's extents would
    // call some of it the backing file's), ranges of zeroes as zeroes.
    DeviceSinkOptions sink_options;
    sink_options.destination_is_zero = false;
    sink_options.operation = "commit";
    DeviceSink sink(base, sink_options);
    CopyEngineOptions engine_options;
    engine_options.begin = e.offset;
    engine_options.end = e.offset + length;
    engine_options.use_extents = false;
    engine_options.operation = "commit";
    QK_ASSIGN_OR_RETURN(auto engine, CopyEngine::create(layer, sink, engine_options));
    QK_TRY(engine->run());
  }
  return {};
}

Status keep_contents_for_new_backing(Qcow2Image& image, BlockDevice* new_backing) {
  QK_ASSIGN_OR_RETURN(std::vector<MapEntry> own, own_allocations(image));
  const uint64_t size = image.info().size;
  const uint64_t cluster = image.cluster_size();
  uint64_t pos = 0;
  for (size_t i = 0; pos < size; ++i) {
    const uint64_t next = i < own.size() ? own[i].offset : size;
    if (next > pos) QK_TRY(copy_differences(image, new_backing, cluster, pos, next));
    if (i >= own.size()) break;
    pos = own[i].offset + own[i].length;
  }
  return {};
}

}  // namespace qcowkit
