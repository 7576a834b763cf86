// Reads and writes of guest data.
//
// Reads and in-place writes (to clusters this layer owns outright) look the
// mapping up under the metadata lock and do their I/O without it. Writes that
// need a new cluster (copy-on-write from a snapshot, a compressed cluster,
// the backing file, or nothing) allocate under the lock: they write the whole
// new cluster, old contents merged in, before pointing the L2 entry at it.
#include <algorithm>
#include <cstring>

#include "qcow2/image_impl.hpp"
#include "util/hex.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {


// Largest allocating write done as one piece: bounds the staging buffer.
constexpr uint64_t kMaxAllocationBatch = 4u << 20;

}  // namespace

Status Qcow2Image::Impl::read_backing(uint64_t offset, ByteSpan out) {
  if (!backing_) {
    std::memset(out.data(), 0, out.size());
    return {};
  }
  const uint64_t backing_size = backing_->info().size;
  uint64_t n = 0;
  if (offset < backing_size) {
    n = std::min<uint64_t>(out.size(), backing_size - offset);
    QK_TRY(backing_->read(offset, out.subspan(0, n)));
  }
  std::memset(out.data() + n, 0, out.size() - n);
  return {};
}

Result<const Codec*> Qcow2Image::Impl::cluster_codec() const {
  const CompressionType type = static_cast<CompressionType>(header_.compression_type);
  const Codec* codec = codecs_->get(type);
  if (!codec)
    return make_error(ENOTSUP, std::string("this build has no ") + to_string(type) +
                                   " codec for compressed clusters");
  return codec;
}

// Reads `out.size()` guest bytes at `guest`, which may lie anywhere in the
// clusters the span covers (also before span.guest_offset in its first one).
Status Qcow2Image::Impl::read_span(const Span& span, uint64_t guest, ByteSpan out) {
  switch (span.kind) {
    case SpanKind::unallocated:
      return read_backing(guest, out);
    case SpanKind::zero:
      std::memset(out.data(), 0, out.size());
      return {};
    case SpanKind::data: {
      const uint64_t host = guest >= span.guest_offset
                                ? span.host_offset + (guest - span.guest_offset)
                                : span.host_offset - (span.guest_offset - guest);
      // Past the end of the file (a file cut short) reads as zeroes.
      const uint64_t file_size = data_file_->info().size;
      const uint64_t n = host >= file_size ? 0 : std::min<uint64_t>(out.size(), file_size - host);
      if (n) QK_TRY(data_file_->read(host, out.subspan(0, n)));
      std::memset(out.data() + n, 0, out.size() - n);
      return {};
    }
    case SpanKind::compressed: {
      Span part = span;  // the same stream, the bytes asked for
      part.guest_offset = guest;
      part.length = out.size();
      return read_compressed_run({part}, guest, out);
    }
  }
  return {};
}

Status Qcow2Image::Impl::collect_spans_locked(uint64_t from, uint64_t to, std::vector<Span>& out) {
  for (uint64_t pos = from; pos < to;) {
    QK_ASSIGN_OR_RETURN(Span span, lookup_locked(pos, to - pos));
    out.push_back(span);
    pos += span.length;
  }
  return {};
}

Status Qcow2Image::Impl::read_spans(const std::vector<Span>& spans, uint64_t from, ByteSpan out) {
  for (const Span& span : spans)
    QK_TRY(read_span(span, span.guest_offset, out.subspan(span.guest_offset - from, span.length)));
  return {};
}

// Compressed clusters written one after another (as a converter writes
// them) lie next to each other in the file: a run of them is read with one
// device read of at most this many bytes, not one read per cluster.
constexpr uint64_t kCompressedBatchBytes = 4u << 20;

Status Qcow2Image::Impl::read_compressed_run(const std::vector<Span>& run, uint64_t from,
                                             ByteSpan out) {
  QK_ASSIGN_OR_RETURN(const Codec* codec, cluster_codec());
  const uint64_t file_size = data_file_->info().size;
  const uint64_t start = run.front().compressed_offset;
  uint64_t stop = start;
  for (const Span& span : run) {
    if (span.compressed_offset >= file_size)
      return make_error(EIO, "compressed cluster at " + hex(span.compressed_offset) +
                                 " lies past the end of the file");
    stop = std::max(stop, std::min(span.compressed_offset + span.compressed_bytes, file_size));
  }
  std::vector<uint8_t> input(stop - start);
  QK_TRY(data_file_->read(start, input));
  std::vector<uint8_t> cluster;
  for (const Span& span : run) {
    const uint64_t bytes = std::min(span.compressed_bytes, stop - span.compressed_offset);
    const ConstByteSpan stream(input.data() + (span.compressed_offset - start), bytes);
    ByteSpan dest = out.subspan(span.guest_offset - from, span.length);
    const uint64_t in_cluster = span.guest_offset % cluster_size_;
    // A whole cluster is decompressed straight into the caller's buffer.
    const bool whole = in_cluster == 0 && span.length == cluster_size_;
    if (!whole) cluster.resize(cluster_size_);
    Status st = codec->decompress(stream, whole ? dest : ByteSpan(cluster));
    if (!st.ok())
      return with_context(std::move(st).error(),
                          "compressed cluster at " + hex(span.compressed_offset));
    if (!whole) std::memcpy(dest.data(), cluster.data() + in_cluster, dest.size());
  }
  return {};
}

Status Qcow2Image::Impl::read(uint64_t offset, ByteSpan buffer) {
  QK_TRY(check_open("read", false));
  ReaderLock gate(io_gate_);
  QK_TRY(check_request(DeviceInfo{header_.size, 1, read_only_}, offset, buffer.size(), false, "read"));
  const uint64_t end = offset + buffer.size();
  std::vector<Span> run;  // neighbouring compressed clusters, read together
  for (uint64_t pos = offset; pos < end;) {
    Span span;
    {
      MutexLock lock(mutex_);
      QK_ASSIGN_OR_RETURN(span, lookup_locked(pos, end - pos));
      if (span.kind == SpanKind::compressed) {
        // Gather the compressed clusters whose streams follow this one's.
        run.assign(1, span);
        uint64_t run_end = span.compressed_offset + span.compressed_bytes;
        uint64_t next = pos + span.length;
        while (next < end) {
          QK_ASSIGN_OR_RETURN(Span more, lookup_locked(next, end - next));
          // compressed_bytes is rounded up to sectors, so streams may
          // overlap their successor's first sector.
          const bool follows = more.kind == SpanKind::compressed &&
                               more.compressed_offset >= run.front().compressed_offset &&
                               more.compressed_offset <= run_end &&
                               more.compressed_offset + more.compressed_bytes -
                                       run.front().compressed_offset <= kCompressedBatchBytes;
          if (!follows) break;
          run.push_back(more);
          run_end = std::max(run_end, more.compressed_offset + more.compressed_bytes);
          next += more.length;
        }
      }
    }
    if (span.kind == SpanKind::compressed) {
      const uint64_t run_length = run.back().guest_offset + run.back().length - pos;
      Status st = read_compressed_run(run, pos, buffer.subspan(pos - offset, run_length));
      if (!st.ok()) return with_context(std::move(st).error(), "read at guest offset " + std::to_string(pos));
      pos += run_length;
      continue;
    }
    Status st = read_span(span, pos, buffer.subspan(pos - offset, span.length));
    if (!st.ok()) return with_context(std::move(st).error(), "read at guest offset " + std::to_string(pos));
    pos += span.length;
  }
  return {};
}

bool Qcow2Image::Impl::in_flight_overlaps_locked(uint64_t first_cluster, uint64_t count) const {
  if (in_flight_.empty()) return false;
  for (uint64_t c = first_cluster; c < first_cluster + count; ++c)
    if (in_flight_.count(c)) return true;
  return false;
}

void Qcow2Image::Impl::wait_for_in_flight_locked(MutexLock& lock, uint64_t offset,
                                                 uint64_t length) {
  if (length == 0) return;
  const uint64_t first = offset / cluster_size_;
  const uint64_t count = (offset + length - 1) / cluster_size_ - first + 1;
  while (in_flight_overlaps_locked(first, count)) in_flight_done_.wait(lock.native());
}

Status Qcow2Image::Impl::prepare_first_write_locked() {
  if (first_write_done_) return {};
  // Bitmaps we maintain keep the "bitmaps consistent" bit (and get their
  // in-use flags set first); anything else in autoclear stops describing
  // the data once we write: say so before the first write, as the spec asks.
  bool maintained;
  {
    MutexLock bits_lock(bitmap_mutex_);
    maintained = plan_bitmap_tracking_locked();
  }
  const uint64_t keep = maintained ? kAutoclearBitmaps : 0;
  if (header_.autoclear_features & ~keep) {
    uint8_t field[8];
    store_be64(field, header_.autoclear_features & keep);
    QK_TRY(write_header_field_locked(kOffAutoclear, field));
    QK_TRY(file_->flush());
    header_.autoclear_features &= keep;
  }
  if (!tracked_bitmaps_.empty()) {
    QK_TRY(set_bitmaps_in_use_locked(true));
    bitmaps_in_use_ = true;
  }
  first_write_done_ = true;
  return {};
}

Status Qcow2Image::Impl::write(uint64_t offset, ConstByteSpan data, bool fua) {
  QK_TRY(check_open("write", true));
  {
    MutexLock lock(mutex_);
    QK_TRY(prepare_first_write_locked());
  }
  {
    ReaderLock gate(io_gate_);
    QK_TRY(check_request(DeviceInfo{header_.size, 1, false}, offset, data.size(), true, "write"));
    mark_bitmaps_dirty(offset, data.size());
    const uint64_t end = offset + data.size();
    for (uint64_t pos = offset; pos < end;) {
      MutexLock lock(mutex_);
      QK_ASSIGN_OR_RETURN(Span span, lookup_locked(pos, end - pos));
      if (span.kind == SpanKind::data && span.copied) {
        for (uint64_t c = span.host_offset / cluster_size_;
             c <= (span.host_offset + span.length - 1) / cluster_size_; ++c)
          if (is_metadata_cluster(c))
            return corruption_locked("data cluster " + hex(c * cluster_size_) +
                                     " for guest offset " + hex(pos) + " overlaps metadata");
        lock.unlock();
        Status st = data_file_->write(span.host_offset, data.subspan(pos - offset, span.length));
        if (!st.ok())
          return with_context(std::move(st).error(), "write at guest offset " + std::to_string(pos));
        pos += span.length;
        continue;
      }

      if (writes_subclusters_in_place(span)) {
        const uint64_t cluster = pos / cluster_size_;
        if (in_flight_overlaps_locked(cluster, 1)) {
          while (in_flight_overlaps_locked(cluster, 1)) in_flight_done_.wait(lock.native());
          continue;
        }
        QK_ASSIGN_OR_RETURN(uint64_t stop, write_subclusters_locked(span, pos, end,
                                                                   data.subspan(pos - offset)));
        pos = stop;
        continue;
      }

      // A new cluster run: old contents around the written bytes are merged
      // in, so the new clusters are complete before anything points at them.
      const uint64_t first = pos - pos % cluster_size_;
      uint64_t stop = std::min(end, span.guest_offset + span.length);
      uint64_t clusters = (stop - first + cluster_size_ - 1) / cluster_size_;
      const uint64_t batch = std::max<uint64_t>(1, kMaxAllocationBatch / cluster_size_);
      if (clusters > batch) {
        clusters = batch;
        stop = first + clusters * cluster_size_;
      }
      const uint64_t first_cluster = first / cluster_size_;
      if (in_flight_overlaps_locked(first_cluster, clusters)) {
        // Another writer is giving these clusters new homes: wait, then look
        // the mapping up again.
        while (in_flight_overlaps_locked(first_cluster, clusters)) in_flight_done_.wait(lock.native());
        continue;
      }
      // What the bytes around the write hold now (with extended L2 they may
      // be several kinds of subcluster).
      const uint64_t tail_end = std::min(first + clusters * cluster_size_, header_.size);
      std::vector<Span> head, tail;
      QK_TRY(collect_spans_locked(first, pos, head));
      QK_TRY(collect_spans_locked(stop, tail_end, tail));
      const uint64_t file_end = data_file_ == file_ ? file_->info().size : UINT64_MAX;
      QK_ASSIGN_OR_RETURN(uint64_t host, allocate_clusters_locked(clusters));
      // Clusters past the file's old end read as zeroes already (a device
      // grown by resize reads as zeroes there), so when the bytes around the
      // write are zeroes too, only the written bytes need to go to the file:
      // a 4K write into a new 64K cluster writes 4K, not 64K.
      const bool fresh_zero_run = host >= file_end && reads_as_zeroes(head) && reads_as_zeroes(tail);
      for (uint64_t i = 0; i < clusters; ++i) in_flight_.insert(first_cluster + i);
      lock.unlock();

      // Build and write the new clusters without holding the lock. Whole
      // clusters, and writes into fresh clusters of zeroes, go straight
      // from the caller's buffer.
      Status st;
      if (fresh_zero_run || (pos == first && stop == first + clusters * cluster_size_)) {
        st = data_file_->write(host + (pos - first), data.subspan(pos - offset, stop - pos));
      } else {
        std::vector<uint8_t> buffer(clusters * cluster_size_);
        st = read_spans(head, first, ByteSpan(buffer.data(), pos - first));
        std::memcpy(buffer.data() + (pos - first), data.data() + (pos - offset), stop - pos);
        if (st.ok()) st = read_spans(tail, stop, ByteSpan(buffer.data() + (stop - first), tail_end - stop));
        if (st.ok()) st = data_file_->write(host, buffer);
      }

      lock.lock();
      auto finish = [&]() QK_REQUIRES(mutex_) {
        for (uint64_t i = 0; i < clusters; ++i) in_flight_.erase(first_cluster + i);
        in_flight_done_.notify_all();
      };
      if (st.ok()) {
        auto l2 = writable_l2_locked(first);
        if (l2.ok()) {
          for (uint64_t i = 0; i < clusters; ++i) {
            const uint64_t index = (first_cluster + i) % l2_entries_;
            release_entry_locked(l2_entry(**l2, index), 0);
            set_l2_entry(**l2, index, (host + i * cluster_size_) | kCopied, kAllSubclustersAllocated);
          }
        } else {
          st = std::move(l2).error();
        }
      }
      finish();
      if (!st.ok()) {
        defer_decrement_locked(host, clusters);  // give the clusters back
        return with_context(std::move(st).error(), "write at guest offset " + std::to_string(pos));
      }
      pos = stop;
    }
  }
  return fua ? flush() : Status{};
}

bool Qcow2Image::Impl::reads_as_zeroes(const std::vector<Span>& spans) const {
  for (const Span& span : spans) {
    if (span.kind == SpanKind::zero) continue;
    if (span.kind == SpanKind::unallocated && !backing_) continue;
    return false;
  }
  return true;
}

// With extended L2, a zero or unallocated subcluster of a cluster the image
// owns outright (COPIED, in an L2 table it owns too) is written where it
// already lies, and only the subcluster bitmap changes. Giving the cluster a
// new home instead would race with in-place writes to its other
// subclusters: they would land in the old copy after it had been read.
bool Qcow2Image::Impl::writes_subclusters_in_place(const Span& span) const {
  if (!header_.extended_l2() || !span.preallocated || !span.copied) return false;
  if (span.kind != SpanKind::unallocated && span.kind != SpanKind::zero) return false;
  const uint64_t l1_index = span.guest_offset / (l2_entries_ * cluster_size_);
  return l1_index < l1_.size() && (l1_[l1_index] & kCopied);
}

// Writes the subclusters of one cluster that [pos, end) touches, filling the
// parts of the first and last subcluster outside the write with what they
// read as now (zeroes, or the backing file), then marks them allocated.
// Called with the lock held; returns with it held. While the lock is
// dropped the guest cluster is in flight, so no other writer fills or
// relocates it and no zero or discard changes its entry.
Result<uint64_t> Qcow2Image::Impl::write_subclusters_locked(const Span& span, uint64_t pos, uint64_t end,
                                                            ConstByteSpan data) {
  const uint64_t cluster = pos / cluster_size_;
  const uint64_t cluster_start = cluster * cluster_size_;
  const uint64_t stop = std::min({end, span.guest_offset + span.length, cluster_start + cluster_size_});
  const uint64_t sub_start = pos - pos % subcluster_size_;
  const uint64_t sub_end = std::min((stop + subcluster_size_ - 1) / subcluster_size_ * subcluster_size_,
                                    cluster_start + cluster_size_);
  const uint64_t host_cluster = span.host_offset - (pos - cluster_start);
  if (is_metadata_cluster(host_cluster / cluster_size_))
    return corruption_locked("data cluster " + hex(host_cluster) + " for guest offset " + hex(pos) +
                             " overlaps metadata");
  std::vector<Span> head, tail;
  QK_TRY(collect_spans_locked(sub_start, pos, head));
  QK_TRY(collect_spans_locked(stop, std::min(sub_end, header_.size), tail));
  // The file may end inside the cluster (its unwritten subclusters were
  // never stored); it must reach the subclusters written now.
  const uint64_t write_end = host_cluster + (sub_end - cluster_start);
  if (data_file_->info().size < write_end) QK_TRY(data_file_->resize(write_end));
  in_flight_.insert(cluster);
  mutex_.unlock();  // the caller's MutexLock still owns it: relocked below

  std::vector<uint8_t> buffer(sub_end - sub_start, 0);
  Status st = read_spans(head, sub_start, ByteSpan(buffer.data(), pos - sub_start));
  std::memcpy(buffer.data() + (pos - sub_start), data.data(), stop - pos);
  if (st.ok() && stop < header_.size)
    st = read_spans(tail, stop, ByteSpan(buffer.data() + (stop - sub_start),
                                         std::min(sub_end, header_.size) - stop));
  if (st.ok()) st = data_file_->write(host_cluster + (sub_start - cluster_start), buffer);

  mutex_.lock();
  if (st.ok()) {
    auto l2 = writable_l2_locked(cluster_start);
    if (l2.ok()) {
      const uint64_t index = cluster % l2_entries_;
      const uint64_t first_sc = (sub_start - cluster_start) / subcluster_size_;
      const uint64_t last_sc = (sub_end - cluster_start - 1) / subcluster_size_;
      uint64_t mask = 0;
      for (uint64_t sc = first_sc; sc <= last_sc; ++sc) mask |= uint64_t{1} << sc;
      const uint64_t bitmap = (l2_bitmap(**l2, index) | mask) & ~(mask << 32);
      set_l2_entry(**l2, index, l2_entry(**l2, index), bitmap);
    } else {
      st = std::move(l2).error();
    }
  }
  in_flight_.erase(cluster);
  in_flight_done_.notify_all();
  if (!st.ok()) return with_context(std::move(st).error(), "write at guest offset " + std::to_string(pos));
  return stop;
}

Status Qcow2Image::Impl::write_compressed(uint64_t offset, ConstByteSpan data) {
  QK_TRY(check_open("write_compressed", true));
  if (offset % cluster_size_ != 0 || offset >= header_.size ||
      (data.size() != cluster_size_ && offset + data.size() != header_.size) ||
      data.size() > cluster_size_)
    return make_error(EINVAL, "write_compressed: needs one whole cluster at a cluster-aligned "
                              "offset (or the image's short last cluster)");
  QK_ASSIGN_OR_RETURN(const Codec* codec, cluster_codec());
  // Compression runs without any lock, so callers can compress on many threads.
  std::vector<uint8_t> padded;
  ConstByteSpan input = data;
  if (data.size() < cluster_size_) {  // QEMU pads the last cluster with zeroes
    padded.assign(cluster_size_, 0);
    std::memcpy(padded.data(), data.data(), data.size());
    input = padded;
  }
  QK_ASSIGN_OR_RETURN(std::vector<uint8_t> packed, codec->compress(input, cluster_size_ - 1));
  if (packed.empty()) return write(offset, data, false);
  return store_compressed(offset, packed);
}

Status Qcow2Image::Impl::store_compressed(uint64_t offset, ConstByteSpan packed) {
  QK_TRY(check_open("store_compressed", true));
  if (offset % cluster_size_ != 0 || offset >= header_.size)
    return make_error(EINVAL, "store_compressed: offset " + std::to_string(offset) +
                                  " is not a cluster-aligned offset inside the image");
  if (packed.empty() || packed.size() >= cluster_size_)
    return make_error(EINVAL, "store_compressed: " + std::to_string(packed.size()) +
                                  " compressed bytes; a stored cluster needs 1 to " +
                                  std::to_string(cluster_size_ - 1));

  ReaderLock gate(io_gate_);
  MutexLock lock(mutex_);
  QK_TRY(prepare_first_write_locked());
  mark_bitmaps_dirty(offset, std::min<uint64_t>(cluster_size_, header_.size - offset));
  wait_for_in_flight_locked(lock, offset, cluster_size_);
  QK_ASSIGN_OR_RETURN(TablePtr l2, writable_l2_locked(offset));
  QK_ASSIGN_OR_RETURN(uint64_t host, allocate_bytes_locked(packed.size()));
  QK_TRY(data_file_->write(host, packed));
  const uint64_t index = (offset / cluster_size_) % l2_entries_;
  release_entry_locked(l2_entry(*l2, index), 0);
  set_l2_entry(*l2, index, encode_compressed(host, packed.size(), cluster_bits_));
  return {};
}

}  // namespace qcowkit
