// Mapping an opened image through its backing chain (see image_map.hpp).
#include "qcowkit/image_map.hpp"

#include <algorithm>

namespace qcowkit {
namespace {

// The engine's map of a qcow2 layer is asked a window at a time, so a huge
// image's map never needs memory for more than one window's entries.
constexpr uint64_t kMapWindow = uint64_t{64} << 20;  // at most 128 Ki entries of 512-byte clusters

int chain_length(const OpenedImage& image) {
  return 1 + (image.backing ? chain_length(*image.backing) : 0);
}

// A raw file maps onto itself. Other formats than qcow2 (vpc, vdi, vmdk, vhdx)
// report their extents, and where each block of data lies in their file
// (file_location); their allocated blocks over holes in the file are data
// that reads as zeroes, as qemu-img says.
Status raw_runs(const OpenedImage& image, uint64_t start, uint64_t length, int depth,
                const std::function<Status(const MapRun&)>& fn) {
  const bool raw = image.device == image.file;
  return for_each_extent(*image.device, start, length, [&](const Extent& e) -> Status {
    MapRun run;
    run.start = e.offset;
    run.length = e.length;
    run.depth = depth;
    run.data = e.kind == ExtentKind::data || (!raw && e.kind == ExtentKind::zero);
    run.zero = e.kind != ExtentKind::data;
    run.present = true;
    run.layer = &image;
    if (raw) run.offset = e.offset;
    if (raw || !run.data) return fn(run);
    // Block by block (map_image merges the pieces contiguous in the file).
    for (uint64_t pos = e.offset, end = e.offset + e.length; pos < end;) {
      const FileLocation at = image.device->file_location(pos);
      MapRun piece = run;
      piece.start = pos;
      piece.length = at.length ? std::min(at.length, end - pos) : end - pos;
      piece.offset = at.offset;
      QK_TRY(fn(piece));
      pos += piece.length;
    }
    return {};
  });
}

Status layer_runs(const OpenedImage& image, uint64_t start, uint64_t length, int depth,
                  const std::function<Status(const MapRun&)>& fn) {
  if (!image.qcow2) return raw_runs(image, start, length, depth, fn);
  const uint64_t end = start + length;
  const uint64_t backing_size = image.backing ? image.backing->device->info().size : 0;
  uint64_t pos = start;
  while (pos < end) {
    const uint64_t window_end = std::min(end, pos + kMapWindow);
    QK_ASSIGN_OR_RETURN(auto entries, image.qcow2->map(pos, window_end - pos));
    if (entries.empty())
      return make_error(EIO, "map returned nothing at offset " + std::to_string(pos));
    for (const MapEntry& e : entries) {
      if (e.offset != pos || e.length == 0 || e.length > window_end - pos)
        return make_error(EIO, "map returned a run that does not continue at offset " +
                                   std::to_string(pos));
      if (e.depth > 0 && image.backing && e.present && e.offset + e.length <= backing_size) {
        QK_TRY(layer_runs(*image.backing, e.offset, e.length, depth + 1, fn));
      } else {
        MapRun run;
        run.start = e.offset;
        run.length = e.length;
        run.depth = depth + e.depth;
        run.present = e.present;
        run.data = e.data;
        run.zero = e.zero;
        run.compressed = e.compressed;
        run.offset = e.host_offset;
        run.layer = &image;
        // Unallocated in every layer: qemu-img counts the whole chain.
        if (!e.present && e.depth > 0 && image.backing)
          run.depth = depth + chain_length(*image.backing);
        QK_TRY(fn(run));
      }
      pos += e.length;
    }
  }
  return {};
}

}  // namespace

bool MapRun::continued_by(const MapRun& next) const {
  if (start + length != next.start || next.depth != depth || next.present != present ||
      next.zero != zero || next.data != data || next.compressed != compressed ||
      next.layer != layer || offset.has_value() != next.offset.has_value())
    return false;
  return !offset || *offset + length == *next.offset;
}

void append_map_run(std::vector<MapRun>& runs, const MapRun& run) {
  if (run.length == 0) return;
  if (!runs.empty() && runs.back().continued_by(run))
    runs.back().length += run.length;
  else
    runs.push_back(run);
}

Status for_each_map_run(const OpenedImage& image, uint64_t start, uint64_t length,
                        const std::function<Status(const MapRun&)>& fn) {
  const uint64_t size = image.device->info().size;
  if (start > size || length > size - start)
    return make_error(EINVAL, "map: range " + std::to_string(start) + "+" + std::to_string(length) +
                                  " is beyond the image's " + std::to_string(size) + " bytes");
  return layer_runs(image, start, length, 0, fn);
}

Result<std::vector<MapRun>> map_image(const OpenedImage& image, uint64_t start, uint64_t length) {
  std::vector<MapRun> runs;
  QK_TRY(for_each_map_run(image, start, length, [&runs](const MapRun& run) -> Status {
    append_map_run(runs, run);
    return {};
  }));
  return runs;
}

}  // namespace qcowkit
