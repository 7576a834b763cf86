// How large an image file would be: qemu-img measure's two numbers.
//
// `required` is what the file needs for the data the source holds (zero and
// unallocated runs cost nothing; data counts in whole output clusters),
// `fully_allocated` what it needs if every byte were written. For qcow2,
// `bitmaps` is what the source's persistent bitmaps would take. The rules
// (and so the numbers) are QEMU's, so both tools agree on every image.
#pragma once

#include <cstdint>
#include <optional>

#include "qcowkit/block_device.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit {

struct MeasureResult {
  uint64_t required = 0;
  uint64_t fully_allocated = 0;
  std::optional<uint64_t> bitmaps;  // qcow2 to qcow2 only
};

// `source` may be null (then `size` / `layout.size` is used) (a new image of `layout.size` bytes); `source_qcow2`
// is the source when it is a qcow2 image (for its bitmaps).
Result<MeasureResult> measure_qcow2(BlockDevice* source, const Qcow2Image* source_qcow2,
                                    const Qcow2CreateOptions& layout);
Result<MeasureResult> measure_raw(BlockDevice* source, uint64_t size);

}  // namespace qcowkit
