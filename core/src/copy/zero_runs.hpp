// The one zero-detection rule of the copy engine (qemu-img convert's -S):
// a buffer is scanned in `unit`-sized pieces from its start; a run of
// all-zero units at least `min_run` bytes long reads as zeroes and need not
// be written as data. Shorter zero runs stay data, so a mostly-data chunk is
// not split into many small requests. A last unit shorter than `unit`
// counts as zero only when its length is a multiple of `alignment` (a
// request over it must be legal on the destination).
#pragma once

#include <cstdint>
#include <vector>

#include "qcowkit/copy_engine.hpp"

namespace qcowkit::engine {

struct ZeroRule {
  uint64_t min_run = 4096;  // 0: no detection, everything is data
  uint64_t unit = 512;      // a multiple of the destination's sector size
  uint64_t alignment = 1;
};

// Appends the pieces of `data` (at `start` within its chunk) to `out`:
// alternating data and zero pieces covering it exactly.
void split_zero_runs(ConstByteSpan data, uint64_t start, const ZeroRule& rule,
                     std::vector<CopyChunk::Piece>& out);

}  // namespace qcowkit::engine
