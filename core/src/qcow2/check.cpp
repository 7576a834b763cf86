// check and repair, counted the way `qemu-img check` counts: a refcount above
// the number of references is a leak, below it a corruption; so is a COPIED
// flag that disagrees with a refcount of exactly one.
//
// Repair fixes leaks in place. When a refcount is too low (or the image was
// left dirty by lazy refcounts) the whole refcount structure is rebuilt at
// the end of the file from the references, and the header switched to it in
// one write, so a crash during repair leaves the old, still-valid structure.
#include <algorithm>

#include "qcow2/image_impl.hpp"
#include "util/hex.hpp"
#include "qcow2/reference_counter.hpp"
#include "qcow2/refcount_entry.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {

constexpr size_t kMaxMessages = 500;


void note(CheckReport* report, std::string message) {
  if (report && report->messages.size() < kMaxMessages) report->messages.push_back(std::move(message));
}

struct WalkOptions {
  bool count_refcount_structures = true;
  bool fix_copied = false;
};

}  // namespace

// Walks every structure of the image, adding its references to `refs`.
// Problems are counted in `report` (which may be null during a rebuild).
static Status count_references(Qcow2Image::Impl& im, ReferenceCounter& refs, CheckReport* report,
                               const WalkOptions& walk) QK_REQUIRES(im.mutex_) {
  const uint64_t cs = im.cluster_size_;
  const uint64_t file_size = im.file_->info().size;
  auto corruption = [report](std::string m) {
    if (report) ++report->corruptions;
    note(report, "ERROR " + std::move(m));
  };
  auto valid_table = [&](uint64_t offset) { return offset % cs == 0 && offset != 0 && offset < file_size; };

  refs.add(0, cs);  // header

  // Walks one L2 table; `active` tables also feed the statistics and the
  // COPIED checks.
  auto walk_l2 = [&](uint64_t l2_offset, bool active) QK_REQUIRES(im.mutex_) -> Status {
    QK_ASSIGN_OR_RETURN(TablePtr l2, im.load_l2_locked(l2_offset));
    uint64_t next_contiguous = 0;  // as qemu-img counts it: within one L2 table
    for (uint64_t i = 0; i < im.l2_entries_; ++i) {
      const uint64_t entry = im.l2_entry(*l2, i);
      if (entry & kCompressed) {
        const CompressedStream stream = decode_compressed(entry, im.cluster_bits_);
        const uint64_t coffset = stream.offset;
        refs.add(stream.offset, stream.bytes);
        if (active && report) {
          ++report->allocated_clusters;
          ++report->compressed_clusters;
          ++report->fragmented_clusters;  // compressed clusters are fragmented by nature
          if (entry & kCopied) corruption("compressed cluster " + hex(coffset) + " has the COPIED flag set");
        }
        continue;
      }
      const uint64_t host = entry & kOffsetMask;
      if (host == 0) {
        if (im.header_.extended_l2() && (im.l2_bitmap(*l2, i) & 0xffffffffu))
          corruption("unallocated cluster in L2 table " + hex(l2_offset) + " has allocated subclusters");
        continue;
      }
      if (host % cs != 0) {
        corruption("data cluster " + hex(host) + " in L2 table " + hex(l2_offset) + " is not cluster aligned");
        continue;
      }
      refs.add(host, cs);
      if (!active || !report) continue;
      ++report->allocated_clusters;
      if (next_contiguous && host != next_contiguous) ++report->fragmented_clusters;
      next_contiguous = host + cs;
      QK_ASSIGN_OR_RETURN(uint64_t stored, im.refcount_locked(host / cs));
      const bool copied = entry & kCopied;
      if ((stored == 1) != copied) {
        if (walk.fix_copied) {
          im.set_l2_entry(*l2, i, stored == 1 ? entry | kCopied : entry & ~kCopied, im.l2_bitmap(*l2, i));
          ++report->corruptions_fixed;
          note(report, "Repairing OFLAG_COPIED data cluster " + hex(host) + " refcount=" + std::to_string(stored));
        } else {
          corruption("OFLAG_COPIED data cluster " + hex(host) + " refcount=" + std::to_string(stored));
        }
      }
    }
    return {};
  };

  // Walks an L1 table and the L2 tables it names.
  auto walk_l1 = [&](const std::vector<uint64_t>& l1, bool active) QK_REQUIRES(im.mutex_) -> Status {
    for (uint64_t i = 0; i < l1.size(); ++i) {
      const uint64_t l2 = l1[i] & kOffsetMask;
      if (l2 == 0) continue;
      if (!valid_table(l2)) {
        corruption("L2 table " + hex(l2) + " (L1 index " + std::to_string(i) + ") is not a valid cluster in the file");
        continue;
      }
      refs.add(l2, cs);
      if (active && report) {
        QK_ASSIGN_OR_RETURN(uint64_t stored, im.refcount_locked(l2 / cs));
        const bool copied = l1[i] & kCopied;
        if ((stored == 1) != copied) {
          if (walk.fix_copied) {
            im.l1_[i] = stored == 1 ? l1[i] | kCopied : l1[i] & ~kCopied;
            im.dirty_l1_.insert(i);
            ++report->corruptions_fixed;
            note(report, "Repairing OFLAG_COPIED L2 cluster " + hex(l2));
          } else {
            corruption("OFLAG_COPIED L2 cluster " + hex(l2) + " refcount=" + std::to_string(stored));
          }
        }
      }
      QK_TRY(walk_l2(l2, active));
    }
    return {};
  };

  refs.add(im.header_.l1_table_offset, uint64_t{im.header_.l1_size} * 8);
  const std::vector<uint64_t> active_l1 = im.l1_;
  QK_TRY(walk_l1(active_l1, true));

  if (im.snapshots_.byte_size) refs.add(im.header_.snapshots_offset, im.snapshots_.byte_size);
  for (const SnapshotEntry& s : im.snapshots_.entries) {
    if (s.l1_size == 0) continue;
    refs.add(s.l1_table_offset, uint64_t{s.l1_size} * 8);
    std::vector<uint8_t> raw(uint64_t{s.l1_size} * 8);
    QK_TRY(im.file_->read(s.l1_table_offset, raw));
    std::vector<uint64_t> l1(s.l1_size);
    for (uint64_t i = 0; i < l1.size(); ++i) l1[i] = load_be64(raw.data() + i * 8);
    QK_TRY(walk_l1(l1, false));
  }

  if (im.header_.bitmaps && (im.header_.autoclear_features & kAutoclearBitmaps)) {
    refs.add(im.header_.bitmaps->directory_offset, im.header_.bitmaps->directory_size);
    for (const BitmapEntry& b : im.bitmaps_.entries) {
      auto clusters = bitmap_clusters(*im.file_, im.header_, b);
      if (!clusters.ok()) {
        corruption(clusters.error().message);
        continue;
      }
      for (uint64_t c : *clusters) refs.add(c, cs);
    }
  }

  if (walk.count_refcount_structures) {
    refs.add(im.header_.refcount_table_offset, uint64_t{im.header_.refcount_table_clusters} * cs);
    for (uint64_t i = 0; i < im.reftable_.size(); ++i) {
      const uint64_t block = im.reftable_[i];
      if (block == 0) continue;
      if (!valid_table(block)) {
        corruption("refcount block " + hex(block) + " is not a valid cluster in the file");
        continue;
      }
      refs.add(block, cs);
    }
  }
  if (refs.references_beyond_end() && report) {
    report->corruptions += refs.references_beyond_end();
    note(report, "ERROR " + std::to_string(refs.references_beyond_end()) +
                     " references point past the end of the file (first " + hex(refs.first_beyond_end()) + ")");
  }
  return {};
}

// The refcount blocks worth visiting when comparing: every block the
// refcount table names, and every block whose range holds a reference, in
// ascending order, limited to the file's clusters. Elsewhere both the
// stored refcount and the reference count are zero.
static std::vector<uint64_t> blocks_to_compare(const Qcow2Image::Impl& im, const ReferenceCounter& refs)
    QK_REQUIRES(im.mutex_) {
  const uint64_t per_block = im.refblock_entries_;
  const uint64_t file_blocks = (refs.clusters() + per_block - 1) / per_block;
  std::vector<uint64_t> blocks;
  for (uint64_t i = 0; i < std::min<uint64_t>(im.reftable_.size(), file_blocks); ++i)
    if (im.reftable_[i]) blocks.push_back(i);
  for (uint64_t b : refs.blocks_with_references(per_block))
    if (b < file_blocks) blocks.push_back(b);
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  return blocks;
}

// Compares stored refcounts with the references; fixes leaks in place when
// asked. Returns whether any refcount is too low.
//
// Time and memory follow the refcount blocks and references the image has
// (each block is its own cluster: open refuses blocks that overlap), not the
// length of its file.
static Result<bool> compare_refcounts(Qcow2Image::Impl& im, const ReferenceCounter& refs,
                                      CheckReport& report, bool fix_leaks) QK_REQUIRES(im.mutex_) {
  bool too_low = false;
  uint64_t highest = 0;
  const uint64_t cs = im.cluster_size_;
  const uint64_t per_block = im.refblock_entries_;
  const uint64_t file_clusters = refs.clusters();

  auto compare_one = [&](uint64_t c, uint64_t stored, uint64_t wanted) QK_REQUIRES(im.mutex_) -> Status {
    if (stored || wanted) highest = c + 1;
    if (stored == wanted) return {};
    if (stored > wanted) {
      if (fix_leaks) {
        // In steps: with 64-bit refcounts the excess may not fit in int64_t.
        for (uint64_t excess = stored - wanted; excess > 0;) {
          const uint64_t step = std::min<uint64_t>(excess, INT64_MAX);
          QK_TRY(im.adjust_refcount_locked(c, -static_cast<int64_t>(step)));
          excess -= step;
        }
        ++report.leaks_fixed;
        note(&report, "Repairing cluster " + hex(c * cs) + " refcount=" + std::to_string(stored) +
                          " reference=" + std::to_string(wanted));
      } else {
        ++report.leaks;
        note(&report, "Leaked cluster " + hex(c * cs) + " refcount=" + std::to_string(stored) +
                          " reference=" + std::to_string(wanted));
      }
    } else {
      too_low = true;
      ++report.corruptions;
      note(&report, "ERROR cluster " + hex(c * cs) + " refcount=" + std::to_string(stored) +
                        " reference=" + std::to_string(wanted));
    }
    return {};
  };

  ReferenceCounter::Cursor wanted(refs);
  for (uint64_t b : blocks_to_compare(im, refs)) {
    const uint64_t first = b * per_block;
    const uint64_t end = std::min(first + per_block, file_clusters);
    const uint64_t block_offset = b < im.reftable_.size() ? im.reftable_[b] : 0;
    if (fix_leaks) {
      // Each repair goes through the refcount cache and may change the
      // block it holds, so every refcount is read afresh.
      for (uint64_t c = first; c < end; ++c) {
        QK_ASSIGN_OR_RETURN(uint64_t stored, im.refcount_locked(c));
        QK_TRY(compare_one(c, stored, wanted.count(c)));
      }
      continue;
    }
    TablePtr block;
    if (block_offset) {
      QK_ASSIGN_OR_RETURN(block, im.load_table_locked(block_offset, TableKind::refcount_block));
    }
    for (uint64_t c = first; c < end; ++c) {
      const uint64_t stored = block ? get_refcount_entry(block->data.data(), c - first, im.refcount_bits_) : 0;
      QK_TRY(compare_one(c, stored, wanted.count(c)));
    }
  }
  report.image_end_offset = highest * cs;
  return too_low;
}

Status Qcow2Image::Impl::rebuild_refcounts_locked(CheckReport* report) {
  QK_TRY(flush_locked());
  const uint64_t cs = cluster_size_;
  const uint64_t file_clusters = (file_->info().size + cs - 1) / cs;
  ReferenceCounter refs(file_clusters, cluster_bits_);
  QK_TRY(count_references(*this, refs, nullptr, WalkOptions{.count_refcount_structures = false}));

  // The new structure goes past everything in the file, so the old one stays
  // valid on disk until the header points elsewhere: its refcount blocks
  // first, then its table. Only blocks that will hold a nonzero refcount are
  // written (a zero table entry means every refcount in its range is zero),
  // so a long, sparse file costs what it references, not its length.
  const uint64_t per_block = refblock_entries_;
  const std::vector<uint64_t> referenced_blocks = refs.blocks_with_references(per_block);
  const uint64_t start = file_clusters;
  // The blocks to write when the new structure ends at `end`: those holding
  // references, and those counting the structure's own clusters [start, end).
  auto blocks_for = [&](uint64_t end) {
    std::vector<uint64_t> out = referenced_blocks;
    for (uint64_t b = start / per_block; b <= (end - 1) / per_block; ++b) out.push_back(b);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  };
  // Growing the structure can need more blocks and a larger table; start
  // from the least it could be and grow until the layout holds itself.
  std::vector<uint64_t> block_indexes = referenced_blocks;
  uint64_t table_clusters = 1;
  bool settled = false;
  for (int i = 0; i < 64 && !settled; ++i) {
    const uint64_t end = start + block_indexes.size() + table_clusters;
    std::vector<uint64_t> wanted = blocks_for(end);
    const uint64_t want_table = (((end - 1) / per_block + 1) * 8 + cs - 1) / cs;
    settled = wanted.size() == block_indexes.size() && want_table == table_clusters;
    block_indexes = std::move(wanted);
    table_clusters = want_table;
  }
  if (!settled) return make_error(EFBIG, "rebuilding refcounts: the new refcount structure does not settle");
  if (table_clusters * cs > kMaxRefcountTableBytes)
    return make_error(EFBIG, "rebuilding refcounts: the refcount table would exceed 8 MiB");
  const uint64_t blocks = block_indexes.size();
  const uint64_t end = start + blocks + table_clusters;
  QK_TRY(file_->resize(end * cs));
  std::vector<uint64_t> table(table_clusters * cs / 8, 0);
  std::vector<uint8_t> block(cs);
  ReferenceCounter::Cursor referenced(refs);
  for (uint64_t k = 0; k < blocks; ++k) {
    const uint64_t b = block_indexes[k];
    std::fill(block.begin(), block.end(), 0);
    for (uint64_t c = b * per_block; c < (b + 1) * per_block; ++c) {
      const uint64_t count = c >= start ? (c < end ? 1 : 0) : referenced.count(c);
      if (count > max_refcount(refcount_bits_))
        return make_error(EOVERFLOW, "rebuilding refcounts: cluster " + hex(c * cs) + " has " +
                                         std::to_string(count) + " references, more than " +
                                         std::to_string(refcount_bits_) + "-bit refcounts hold");
      set_refcount_entry(block.data(), c - b * per_block, refcount_bits_, count);
    }
    table[b] = (start + k) * cs;
    QK_TRY(file_->write(table[b], block));
  }
  std::vector<uint8_t> raw(table.size() * 8);
  for (size_t i = 0; i < table.size(); ++i) store_be64(raw.data() + i * 8, table[i]);
  QK_TRY(file_->write((start + blocks) * cs, raw));
  QK_TRY(file_->flush());
  uint8_t field[12];
  store_be64(field, (start + blocks) * cs);
  store_be32(field + 8, static_cast<uint32_t>(table_clusters));
  QK_TRY(write_header_field_locked(kOffRefcountTableOffset, field));
  QK_TRY(file_->flush());

  // Switch the in-memory state over to the new structure.
  for (uint64_t old : reftable_)
    if (old) {
      metadata_clusters_.erase(old / cs);
      cache_.erase(old);
    }
  for (uint64_t c = header_.refcount_table_offset / cs;
       c < header_.refcount_table_offset / cs + header_.refcount_table_clusters; ++c)
    metadata_clusters_.erase(c);
  // Clusters that metadata_clusters_ still names but nothing references are
  // stale after a crash; they become free space.
  header_.refcount_table_offset = (start + blocks) * cs;
  header_.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  reftable_ = std::move(table);
  dirty_reftable_.clear();
  for (uint64_t c = start; c < end; ++c) metadata_clusters_.insert(c);
  deferred_decrements_.clear();
  releasable_decrements_.clear();
  free_hint_ = 0;
  compressed_cursor_ = 0;
  if (report) note(report, "Rebuilt the refcount structure");
  return {};
}

Result<CheckReport> Qcow2Image::Impl::check(RepairMode repair) {
  QK_TRY(check_open("check", repair != RepairMode::none));
  if (repair != RepairMode::none && corrupt_)
    return make_error(EIO, "check: the image was found corrupt while open; reopen it to repair");
  if (!read_only_) QK_TRY(flush());  // settle deferred refcount drops first

  WriterLock gate(io_gate_);
  MutexLock lock(mutex_);
  const uint64_t cs = cluster_size_;
  auto run_check = [&](bool fix_leaks, bool fix_copied) QK_REQUIRES(mutex_) -> Result<std::pair<CheckReport, bool>> {
    CheckReport report;
    report.total_clusters = (header_.size + cs - 1) / cs;
    ReferenceCounter refs((file_->info().size + cs - 1) / cs, cluster_bits_);
    QK_TRY(count_references(*this, refs, &report, WalkOptions{true, fix_copied}));
    QK_ASSIGN_OR_RETURN(bool too_low, compare_refcounts(*this, refs, report, fix_leaks));
    return std::make_pair(std::move(report), too_low);
  };

  QK_ASSIGN_OR_RETURN(auto first, run_check(false, false));
  if (repair == RepairMode::none) return std::move(first.first);

  CheckReport fixed;
  if (repair == RepairMode::all && (first.second || first.first.corruptions)) {
    const uint64_t refcount_errors = first.first.corruptions;
    QK_TRY(rebuild_refcounts_locked(&fixed));
    fixed.corruptions_fixed += refcount_errors;
    fixed.leaks_fixed += first.first.leaks;
  }
  QK_ASSIGN_OR_RETURN(auto repaired, run_check(true, repair == RepairMode::all));
  fixed.leaks_fixed += repaired.first.leaks_fixed;
  fixed.corruptions_fixed += repaired.first.corruptions_fixed;
  QK_TRY(flush_locked());
  QK_TRY(write_dirty_refcounts_locked());

  // Report the state after repair, with what was fixed, as qemu-img does.
  QK_ASSIGN_OR_RETURN(auto after, run_check(false, false));
  CheckReport report = std::move(after.first);
  report.leaks_fixed = fixed.leaks_fixed;
  report.corruptions_fixed = std::min(fixed.corruptions_fixed, first.first.corruptions);
  report.messages.insert(report.messages.begin(), fixed.messages.begin(), fixed.messages.end());
  report.messages.insert(report.messages.begin(), repaired.first.messages.begin(), repaired.first.messages.end());
  if ((header_.incompatible_features & kIncompatDirty) && report.corruptions == 0) {
    uint8_t field[8];
    store_be64(field, header_.incompatible_features & ~kIncompatDirty);
    QK_TRY(write_header_field_locked(kOffIncompatible, field));
    header_.incompatible_features &= ~kIncompatDirty;
    QK_TRY(file_->flush());
  }
  return report;
}

}  // namespace qcowkit
