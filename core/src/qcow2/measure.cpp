// qemu-img measure's arithmetic: the metadata a fully allocated qcow2 image
// of a given layout needs (header, L2 and L1 tables, refcount blocks and
// table), plus the data clusters the source really holds.
#include "qcowkit/measure.hpp"

#include <algorithm>

#include "qcow2/format.hpp"
#include "qcowkit/qcow2_options.hpp"

namespace qcowkit {
namespace {

uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
uint64_t round_up(uint64_t a, uint64_t b) { return div_up(a, b) * b; }

// Refcount blocks and table clusters for `clusters` clusters, counting
// themselves: iterate until the count settles.
uint64_t refcount_metadata_bytes(uint64_t clusters, uint64_t cluster_size, unsigned refcount_bits) {
  const uint64_t per_table_cluster = cluster_size / 8;
  const uint64_t per_block = cluster_size * 8 / refcount_bits;
  uint64_t table = 0, blocks = 0, n = 0, last;
  do {
    last = n;
    blocks = div_up(clusters + table + blocks, per_block);
    table = div_up(blocks, per_table_cluster);
    n = clusters + blocks + table;
  } while (n != last);
  return (blocks + table) * cluster_size;
}

uint64_t fully_allocated_bytes(const Qcow2CreateOptions& o) {
  const uint64_t cs = o.cluster_size;
  const uint64_t entry = o.extended_l2 ? 16 : 8;
  const uint64_t aligned = round_up(o.size, cs);
  uint64_t meta = cs;  // the header
  const uint64_t l2_entries = round_up(aligned / cs, cs / entry);
  meta += l2_entries * entry;
  const uint64_t l1_entries = round_up(l2_entries * entry / cs, cs / 8);
  meta += l1_entries * 8;
  meta += refcount_metadata_bytes((meta + aligned) / cs, cs, o.refcount_bits);
  return meta + aligned;
}

// Bytes of the source's data, each run stretched to whole output clusters.
Result<uint64_t> data_bytes(BlockDevice& source, uint64_t cluster_size) {
  uint64_t total = 0, counted_to = 0;
  QK_TRY(for_each_extent(source, 0, source.info().size, [&](const Extent& e) -> Status {
    if (e.kind != ExtentKind::data) return {};
    const uint64_t start = std::max(e.offset / cluster_size * cluster_size, counted_to);
    const uint64_t end = round_up(e.offset + e.length, cluster_size);
    if (end > start) total += end - start;
    counted_to = std::max(counted_to, end);
    return {};
  }));
  return total;
}

}  // namespace

Result<MeasureResult> measure_qcow2(BlockDevice* source, const Qcow2Image* source_qcow2,
                                    const Qcow2CreateOptions& layout) {
  const uint64_t cs = layout.cluster_size;
  QK_TRY(validate_qcow2_create_options(layout, /*check_size=*/false));
  Qcow2CreateOptions rounded = layout;
  rounded.size = round_up(layout.size, 512);  // sizes are whole sectors
  const uint64_t l1_bytes = div_up(div_up(rounded.size, cs), cs / (layout.extended_l2 ? 16 : 8)) * 8;
  if (l1_bytes > qcow2::kMaxL1Bytes)
    return make_error(EFBIG, "the image would need an L1 table larger than 32 MiB; "
                             "use a larger cluster size");
  MeasureResult r;
  r.fully_allocated = fully_allocated_bytes(rounded);
  uint64_t data = 0;
  if (source) {
    QK_ASSIGN_OR_RETURN(data, data_bytes(*source, cs));
  }
  r.required = r.fully_allocated - round_up(rounded.size, cs) + data;
  // Bitmaps exist from version 3 on, on both sides.
  if (source_qcow2 && source_qcow2->details().version >= 3 && layout.version >= 3) {
    // Each bitmap: its data clusters and its table, then the directory.
    uint64_t bitmaps = 0, directory = 0;
    for (const Qcow2Bitmap& b : source_qcow2->details().bitmaps) {
      const uint64_t bits = div_up(rounded.size, uint64_t{1} << b.granularity_bits);
      const uint64_t clusters = div_up(div_up(bits, 8), cs);
      bitmaps += (clusters + div_up(clusters * 8, cs)) * cs;
      directory += round_up(24 + b.name.size(), 8);
    }
    r.bitmaps = bitmaps + round_up(directory, cs);
  }
  return r;
}

// A raw file is counted as fully allocated, holes or not (as QEMU counts it:
// whether the file system keeps holes is not the image's to promise).
Result<MeasureResult> measure_raw(BlockDevice* source, uint64_t size) {
  MeasureResult r;
  r.required = r.fully_allocated = source ? source->info().size : round_up(size, 512);
  return r;
}

}  // namespace qcowkit
