// The map of an opened image: its guest address space as runs, each saying
// which layer of the backing chain answers it and how (data, zeroes,
// unallocated, compressed), in the shape `qemu-img map --output=json` prints.
// The CLI's `map` and the browser's allocation map both come from here, so
// the two agree with each other and with qemu-img.
//
// Thread safety: as the image's devices (Qcow2Image may be read while
// mapped). Memory: runs are produced window by window; only map_image
// collects them all.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "qcowkit/image_opener.hpp"

namespace qcowkit {

struct MapRun {
  uint64_t start = 0, length = 0;
  int depth = 0;  // 0: the image itself; n: the n-th backing file down
  bool present = false, zero = false, data = false, compressed = false;
  std::optional<uint64_t> offset;        // where the data lies in `layer`'s file
  const OpenedImage* layer = nullptr;    // the layer that answers (valid while it is open)

  // True when `next` continues this run as qemu-img merges runs: adjacent,
  // the same kind and layer, and contiguous in the file when located.
  bool continued_by(const MapRun& next) const;
};

// Adds `run` to `runs`, merged into the last run when it continues it.
void append_map_run(std::vector<MapRun>& runs, const MapRun& run);

// Calls `fn` for the runs of [start, start + length), in order, unmerged.
// Where a qcow2 layer defers to its backing file and that file is open, the
// backing file's own runs take its place, one level deeper. A raw layer maps
// onto itself (data where its file has data, holes elsewhere).
Status for_each_map_run(const OpenedImage& image, uint64_t start, uint64_t length,
                        const std::function<Status(const MapRun&)>& fn);

// The runs of [start, start + length), merged.
Result<std::vector<MapRun>> map_image(const OpenedImage& image, uint64_t start, uint64_t length);

}  // namespace qcowkit
