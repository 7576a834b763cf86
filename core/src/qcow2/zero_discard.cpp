// write_zeroes and discard. Whole clusters change only their L2 entries
// (v3 zero flag, or deallocation); partial clusters are written with zeroes.
#include <algorithm>
#include <vector>

#include "qcow2/image_impl.hpp"

namespace qcowkit {

using namespace qcow2;

bool Qcow2Image::Impl::can_zero_fast(uint64_t offset, uint64_t length) {
  if (offset % cluster_size_ != 0) return false;
  if (length % cluster_size_ != 0 && offset + length != header_.size) return false;
  // Version 2 has no zero flag: only deallocation reads as zero, and only
  // with nothing beneath.
  return header_.version >= 3 || !backing_;
}

Status Qcow2Image::Impl::zero_or_discard(uint64_t offset, uint64_t length, bool discard,
                                         ZeroFlags flags) {
  const char* op = discard ? "discard" : "write_zeroes";
  QK_TRY(check_open(op, true));
  {
    ReaderLock gate(io_gate_);
    QK_TRY(check_request(DeviceInfo{header_.size, 1, false}, offset, length, true, op));
  }
  if (length == 0) return {};
  {
    MutexLock lock(mutex_);
    QK_TRY(prepare_first_write_locked());
  }
  mark_bitmaps_dirty(offset, length);
  const uint64_t end = offset + length;
  // Whole clusters: from the first cluster boundary at or after offset to the
  // last before end (the image's last cluster counts as whole at its end).
  uint64_t whole_start = (offset + cluster_size_ - 1) / cluster_size_ * cluster_size_;
  uint64_t whole_end = end == header_.size ? end : end / cluster_size_ * cluster_size_;
  if (whole_start >= whole_end) whole_start = whole_end = end;
  const bool metadata_only = header_.version >= 3 || !backing_;
  if (flags.fast_only && (whole_start != offset || whole_end != end || !metadata_only))
    return make_error(ENOTSUP, std::string(op) + ": this range cannot be zeroed by metadata alone");

  // Partial clusters at either end are zeroes written as data.
  auto write_zero_bytes = [this](uint64_t from, uint64_t to) -> Status {
    if (from >= to) return {};
    std::vector<uint8_t> zeroes(std::min<uint64_t>(to - from, 1u << 20), 0);
    for (uint64_t pos = from; pos < to; pos += zeroes.size()) {
      const uint64_t n = std::min<uint64_t>(zeroes.size(), to - pos);
      QK_TRY(write(pos, ConstByteSpan(zeroes.data(), n), false));
    }
    return {};
  };
  QK_TRY(write_zero_bytes(offset, whole_start));
  QK_TRY(write_zero_bytes(whole_end, end));
  if (!metadata_only) {
    QK_TRY(write_zero_bytes(whole_start, whole_end));
    return flags.fua ? flush() : Status{};
  }

  {
    ReaderLock gate(io_gate_);
    MutexLock lock(mutex_);
    wait_for_in_flight_locked(lock, whole_start, whole_end - whole_start);
    for (uint64_t pos = whole_start; pos < whole_end;) {
      // Skip runs that already read as wanted without touching their table.
      QK_ASSIGN_OR_RETURN(Span span, lookup_locked(pos, whole_end - pos));
      const bool unallocated_reads_zero = !backing_;
      bool done_already = false;
      if (span.kind == SpanKind::unallocated)
        done_already = discard || header_.version < 3 || (unallocated_reads_zero && flags.may_trim);
      else if (span.kind == SpanKind::zero)
        done_already = !discard && (!span.preallocated || !flags.may_trim);
      // With extended L2 a span may end inside a cluster; only runs of
      // whole clusters can be skipped.
      const uint64_t whole = span.length / cluster_size_ * cluster_size_;
      if (done_already && whole > 0) {
        pos += whole;
        continue;
      }
      QK_ASSIGN_OR_RETURN(TablePtr l2, writable_l2_locked(pos));
      const uint64_t table_end =
          std::min(whole_end, (pos / (l2_entries_ * cluster_size_) + 1) * l2_entries_ * cluster_size_);
      const uint64_t run_end = std::min(table_end, span.guest_offset + span.length);
      for (; pos < run_end; pos += cluster_size_) {
        const uint64_t index = (pos / cluster_size_) % l2_entries_;
        const uint64_t old = l2_entry(*l2, index);
        uint64_t updated;
        if (discard || header_.version < 3 || (flags.may_trim && unallocated_reads_zero)) {
          updated = 0;  // deallocated: reads as zero, or as the backing file after discard
        } else if (!flags.may_trim && !(old & kCompressed) && (old & kCopied) && (old & kOffsetMask)) {
          updated = (old & (kOffsetMask | kCopied)) | kZeroFlag;  // keep the cluster, mark it zero
        } else {
          updated = kZeroFlag;
        }
        uint64_t bitmap = 0;
        if (header_.extended_l2() && (updated & kZeroFlag)) {
          // Extended L2 entries say "zero" per subcluster, not with bit 0.
          updated &= ~kZeroFlag;
          bitmap = kAllSubclustersZero;
        }
        if (updated == old && bitmap == l2_bitmap(*l2, index)) continue;
        const bool keeps_cluster = (updated & kOffsetMask) && (updated & kOffsetMask) == (old & kOffsetMask);
        if (!keeps_cluster) release_entry_locked(old, 0);
        set_l2_entry(*l2, index, updated, bitmap);
      }
    }
  }
  return flags.fua ? flush() : Status{};
}

}  // namespace qcowkit
