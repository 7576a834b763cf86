#include "copy/zero_runs.hpp"

#include <algorithm>

namespace qcowkit::engine {

void split_zero_runs(ConstByteSpan data, uint64_t start, const ZeroRule& rule,
                     std::vector<CopyChunk::Piece>& out) {
  const uint64_t size = data.size();
  if (size == 0) return;
  auto add = [&](uint64_t from, uint64_t length, bool zero) {
    if (length == 0) return;
    if (!out.empty() && out.back().zero == zero && out.back().packed.empty() &&
        out.back().start + out.back().length == start + from) {
      out.back().length += length;
      return;
    }
    out.push_back({start + from, length, zero, {}});
  };
  if (rule.min_run == 0) {
    add(0, size, false);
    return;
  }
  const uint64_t unit = std::max<uint64_t>(rule.unit, 1);
  const uint64_t alignment = std::max<uint64_t>(rule.alignment, 1);
  const uint64_t min_run = std::max(rule.min_run, unit);
  auto unit_is_zero = [&](uint64_t at) {
    const uint64_t n = std::min(unit, size - at);
    if (n < unit && n % alignment != 0) return false;
    return is_all_zero(data.subspan(at, n));
  };
  uint64_t data_start = 0, pos = 0;
  while (pos < size) {
    if (!unit_is_zero(pos)) {
      pos += unit;
      continue;
    }
    uint64_t run_end = pos + unit;
    while (run_end < size && unit_is_zero(run_end)) run_end += unit;
    run_end = std::min(run_end, size);
    if (run_end - pos >= min_run) {
      add(data_start, pos - data_start, false);
      add(pos, run_end - pos, true);
      data_start = run_end;
    }
    pos = run_end;
  }
  add(data_start, std::min(pos, size) - data_start, false);
}

}  // namespace qcowkit::engine
