// Writing a new, empty image: header, refcount table, refcount blocks and L1
// table laid out one after another, every cluster counted, so that
// `qemu-img check` finds nothing to say. Preallocation then goes through the
// ordinary allocator.
#include <algorithm>

#include "qcow2/image_impl.hpp"
#include "qcow2/refcount_entry.hpp"
#include "qcowkit/qcow2_options.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {

unsigned log2_exact(uint64_t v) {
  unsigned bits = 0;
  while ((uint64_t{1} << bits) < v) ++bits;
  return bits;
}

}  // namespace

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::create(std::shared_ptr<BlockDevice> file,
                                                       const Qcow2CreateOptions& o,
                                                       const Qcow2OpenOptions& open_options) {
  if (auto valid = validate_qcow2_create_options(o); !valid.ok())
    return with_context(valid.error(), "create");
  if (file->info().read_only) return make_error(EROFS, "create: the target is read-only");

  Header h;
  h.version = static_cast<uint32_t>(o.version);
  h.cluster_bits = log2_exact(o.cluster_size);
  h.size = o.size;
  h.refcount_order = log2_exact(o.refcount_bits);
  if (o.lazy_refcounts) h.compatible_features |= kCompatLazyRefcounts;
  if (o.extended_l2) h.incompatible_features |= kIncompatExtendedL2;
  if (o.compression_type == CompressionType::zstd) {
    h.incompatible_features |= kIncompatCompression;
    h.compression_type = 1;
  }
  h.backing_file = o.backing_file;
  h.backing_format = o.backing_format;
  const uint64_t cs = h.cluster_size();
  const uint64_t l1_entries = h.l1_entries_for(o.size);
  if (l1_entries * 8 > kMaxL1Bytes) return make_error(EFBIG, "create: the image is too large for this cluster size");
  h.l1_size = static_cast<uint32_t>(l1_entries);

  // Layout: header | refcount table | refcount blocks | L1 table. An empty
  // image has no L1 table at all (offset 0, as QEMU writes it): a cluster
  // kept for zero entries is one nothing references, a leak to qemu-img
  // check, and a resize could not know to free it.
  const uint64_t l1_clusters = (l1_entries * 8 + cs - 1) / cs;
  const uint64_t per_block = h.refcount_block_entries();
  const RefcountLayout refcounts = refcount_layout_for(1 + l1_clusters, cs, h.refcount_bits());
  const uint64_t table_clusters = refcounts.table_clusters, blocks = refcounts.blocks;
  const uint64_t total = 1 + table_clusters + blocks + l1_clusters;
  if (table_clusters * cs > kMaxRefcountTableBytes)
    return make_error(EFBIG, "create: the refcount table would be larger than 8 MiB");
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  const uint64_t blocks_offset = (1 + table_clusters) * cs;
  h.l1_table_offset = l1_clusters ? blocks_offset + blocks * cs : 0;

  QK_ASSIGN_OR_RETURN(std::vector<uint8_t> header_bytes, serialize_header(h));
  QK_TRY(file->resize(0));
  QK_TRY(file->resize(total * cs));
  QK_TRY(file->write(0, header_bytes));
  std::vector<uint8_t> table(table_clusters * cs, 0);
  for (uint64_t b = 0; b < blocks; ++b) store_be64(table.data() + b * 8, blocks_offset + b * cs);
  QK_TRY(file->write(h.refcount_table_offset, table));
  std::vector<uint8_t> block(cs);
  for (uint64_t b = 0; b < blocks; ++b) {
    std::fill(block.begin(), block.end(), 0);
    for (uint64_t c = b * per_block; c < std::min(total, (b + 1) * per_block); ++c)
      set_refcount_entry(block.data(), c - b * per_block, o.refcount_bits, 1);
    QK_TRY(file->write(blocks_offset + b * cs, block));
  }
  QK_TRY(file->flush());

  Qcow2OpenOptions options = open_options;
  options.read_only = false;
  QK_ASSIGN_OR_RETURN(auto image, open(file, options));
  if (o.preallocation != Preallocation::off) {
    // Every guest cluster gets its L2 entry and host cluster now; with
    // falloc the file space is reserved, with full it is written.
    Impl& impl = *image->impl_;
    MutexLock lock(impl.mutex_);
    const uint64_t clusters = (o.size + cs - 1) / cs;
    for (uint64_t c = 0; c < clusters;) {
      QK_ASSIGN_OR_RETURN(TablePtr l2, impl.writable_l2_locked(c * cs));
      const uint64_t in_table = std::min(clusters - c, impl.l2_entries_ - c % impl.l2_entries_);
      QK_ASSIGN_OR_RETURN(uint64_t host, impl.allocate_clusters_locked(in_table));
      if (o.preallocation != Preallocation::metadata)
        QK_TRY(file->write_zeroes(host, in_table * cs,
                                  ZeroFlags{.may_trim = o.preallocation == Preallocation::falloc}));
      for (uint64_t i = 0; i < in_table; ++i)
        impl.set_l2_entry(*l2, (c + i) % impl.l2_entries_, (host + i * cs) | kCopied,
                          kAllSubclustersAllocated);
      c += in_table;
    }
    QK_TRY(impl.flush_locked());
  }
  return image;
}

}  // namespace qcowkit
