// The state behind Qcow2Image and the operations on it, split by concern
// across several files: open.cpp, create.cpp, mapping.cpp (guest-to-host
// lookups), refcounts.cpp (refcounts and allocation), io.cpp (read and
// write), zero_discard.cpp, flush.cpp, resize.cpp, check.cpp, compact.cpp,
// extents.cpp, snapshot_ops.cpp, bitmap_tracking.cpp, bitmap_ops.cpp,
// header_update.cpp.
//
// Locking: `mutex_` guards every piece of metadata (header, L1, refcount
// table, cache). Data I/O runs without it, inside a shared hold of
// `io_gate_`: reads, writes to clusters the image owns outright, and the
// data of allocating writes (whose guest clusters are marked in `in_flight_`
// until their L2 entries point at the new clusters, so nothing else changes
// their mapping meanwhile). Dropping a refcount (which lets a cluster be
// reused) takes `io_gate_` exclusively, so no read or write still aimed at
// the old owner can land after reuse. Lock order: io_gate_, mutex_.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_set>
#include <vector>

#include "qcow2/bitmaps.hpp"
#include "qcow2/format.hpp"
#include "qcow2/header.hpp"
#include "qcow2/metadata_cache.hpp"
#include "qcow2/snapshots.hpp"
#include "qcowkit/mutex.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit {

// What one run of guest bytes maps to.
enum class SpanKind : uint8_t { unallocated, zero, data, compressed };

struct Span {
  SpanKind kind = SpanKind::unallocated;
  uint64_t guest_offset = 0;
  uint64_t length = 0;
  uint64_t host_offset = 0;        // data, preallocated zero: where guest_offset lies in the file
  bool copied = false;             // data: refcount is exactly 1 (may write in place)
  bool preallocated = false;       // zero, unallocated: the entry still owns a host cluster
  uint64_t compressed_offset = 0;  // compressed: byte offset of the stream
  uint64_t compressed_bytes = 0;   //             and its length (whole sectors)
};

class Qcow2Image::Impl {
 public:
  Impl(std::shared_ptr<BlockDevice> file, const Qcow2OpenOptions& options);

  // open.cpp
  // Both run before the image is shared with any other thread; they take
  // mutex_ only around what they hand to code that expects it.
  Status load(const Qcow2OpenOptions& options) QK_NO_THREAD_SAFETY_ANALYSIS;
  Status load_snapshot_view(const std::string& id_or_name) QK_NO_THREAD_SAFETY_ANALYSIS;

  // mapping.cpp: the run starting at guest_offset (at most max_length bytes,
  // never crossing an L2 table).
  Result<Span> lookup_locked(uint64_t guest_offset, uint64_t max_length) QK_REQUIRES(mutex_);
  Result<qcow2::TablePtr> load_l2_locked(uint64_t l2_offset) QK_REQUIRES(mutex_);
  Result<qcow2::TablePtr> load_table_locked(uint64_t offset, qcow2::TableKind kind) QK_REQUIRES(mutex_);
  Status make_room_locked() QK_REQUIRES(mutex_);
  Status write_table_locked(const qcow2::TablePtr& table) QK_REQUIRES(mutex_);

  // refcounts.cpp
  Result<uint64_t> refcount_locked(uint64_t cluster_index) QK_REQUIRES(mutex_);
  Status adjust_refcount_locked(uint64_t cluster_index, int64_t delta) QK_REQUIRES(mutex_);
  Result<uint64_t> find_free_run_locked(uint64_t count) QK_REQUIRES(mutex_);      // -> cluster index
  Result<uint64_t> allocate_clusters_locked(uint64_t count) QK_REQUIRES(mutex_);  // -> host offset
  Result<uint64_t> allocate_bytes_locked(uint64_t bytes) QK_REQUIRES(mutex_);      // for compressed data
  Status ensure_refcount_block_locked(uint64_t block_index) QK_REQUIRES(mutex_);
  Status grow_refcount_table_locked(uint64_t min_entries) QK_REQUIRES(mutex_);
  void defer_decrement_locked(uint64_t host_offset, uint64_t clusters = 1) QK_REQUIRES(mutex_);
  void defer_compressed_free_locked(uint64_t byte_offset, uint64_t bytes) QK_REQUIRES(mutex_);
  bool is_metadata_cluster(uint64_t cluster_index) const QK_REQUIRES(mutex_);

  // io.cpp
  Status read(uint64_t offset, ByteSpan buffer);
  Status write(uint64_t offset, ConstByteSpan data, bool fua);
  Status read_span(const Span& span, uint64_t offset, ByteSpan out);  // no lock needed
  Status read_backing(uint64_t offset, ByteSpan out);
  Status collect_spans_locked(uint64_t from, uint64_t to, std::vector<Span>& out) QK_REQUIRES(mutex_);
  Status read_spans(const std::vector<Span>& spans, uint64_t from, ByteSpan out);
  // Whether every span reads as zeroes (zero clusters, or unallocated ones
  // with no backing file to show through).
  bool reads_as_zeroes(const std::vector<Span>& spans) const;
  Result<const Codec*> cluster_codec() const;  // the image's compression codec, or why not
  // Reads neighbouring compressed clusters (`run`, in guest order, the
  // first starting at `from`; each span may cover part of its cluster) with
  // one device read into `out`.
  Status read_compressed_run(const std::vector<Span>& run, uint64_t from, ByteSpan out);
  Status write_compressed(uint64_t offset, ConstByteSpan data);
  Status store_compressed(uint64_t offset, ConstByteSpan packed);
  Status prepare_first_write_locked() QK_REQUIRES(mutex_);
  bool writes_subclusters_in_place(const Span& span) const QK_REQUIRES(mutex_);
  Result<uint64_t> write_subclusters_locked(const Span& span,
                                            uint64_t pos, uint64_t end, ConstByteSpan data) QK_REQUIRES(mutex_);

  // l2_update.cpp: L2 tables the active layer may change in place.
  Result<qcow2::TablePtr> writable_l2_locked(uint64_t guest_offset) QK_REQUIRES(mutex_);
  uint64_t l2_entry(const qcow2::CachedTable& l2, uint64_t index) const;
  uint64_t l2_bitmap(const qcow2::CachedTable& l2, uint64_t index) const;
  void set_l2_entry(qcow2::CachedTable& l2, uint64_t index, uint64_t entry, uint64_t bitmap = 0);
  void release_entry_locked(uint64_t entry, uint64_t bitmap) QK_REQUIRES(mutex_);

  // zero_discard.cpp
  Status zero_or_discard(uint64_t offset, uint64_t length, bool discard, ZeroFlags flags);
  bool can_zero_fast(uint64_t offset, uint64_t length);

  // flush.cpp
  Status flush();
  Status flush_locked() QK_REQUIRES(mutex_);  // metadata in the crash-safe order, with barriers
  Status write_dirty_refcounts_locked() QK_REQUIRES(mutex_);
  Status barrier_locked() QK_REQUIRES(mutex_);             // flushes the image file (and the data file)
  Status barrier_before_l2_locked() QK_REQUIRES(mutex_);   // refcounts and data durable before L2 writes
  Status apply_deferred_decrements();  // applies releasable_decrements_
  Status apply_releasable_locked() QK_REQUIRES(io_gate_, mutex_);  // the same, with io_gate_ held exclusively
  Status write_header_field_locked(uint64_t field_offset, ConstByteSpan bytes) QK_REQUIRES(mutex_);
  Error corruption_locked(const std::string& what) QK_REQUIRES(mutex_);

  // resize.cpp
  Status resize(uint64_t new_size, bool allow_shrink);
  Status grow_l1_locked(uint64_t entries) QK_REQUIRES(mutex_);

  // extents.cpp
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length);
  Result<bool> metadata_preallocated_locked() QK_REQUIRES(mutex_);
  std::optional<bool> metadata_preallocated_;  // decided on first use
  Result<std::vector<MapEntry>> map(uint64_t offset, uint64_t length);

  // check.cpp
  Result<CheckReport> check(RepairMode repair);
  Status rebuild_refcounts_locked(CheckReport* report) QK_REQUIRES(mutex_);

  // compact.cpp
  Status compact();

  // bitmap_tracking.cpp
  struct TrackedBitmap {
    size_t entry;               // index in bitmaps_.entries
    unsigned granularity_bits;
    std::map<uint64_t, std::vector<uint8_t>> set_bits;  // data cluster index -> bits set
  };
  bool plan_bitmap_tracking_locked() QK_REQUIRES(mutex_);
  Status set_bitmaps_in_use_locked(bool in_use) QK_REQUIRES(mutex_);
  void mark_bitmaps_dirty(uint64_t offset, uint64_t length);
  Status persist_bitmaps_locked() QK_REQUIRES(mutex_);
  Result<std::vector<Extent>> bitmap_ranges(const std::string& name);  // bitmap_ranges.cpp
  Result<std::vector<Extent>> bitmap_ranges_locked(const qcow2::BitmapEntry& bitmap) QK_REQUIRES(mutex_);

  // bitmap_ops.cpp: directory changes, each published with one header write
  struct BitmapRequest {
    enum Kind { add, remove, clear, enable, disable, merge } kind;
    std::string name;                                 // the bitmap changed
    uint64_t granularity = 0;                         // add
    bool enabled = true;                              // add
    const std::string* source_name = nullptr;         // merge, from this image
    const std::vector<Extent>* source_ranges = nullptr;  // merge, from another image
    uint64_t source_size = 0;                         //   ... of this virtual size
  };
  Status change_bitmaps(const char* op, const BitmapRequest& request);
  Status apply_bitmap_request_locked(const BitmapRequest& request,
                                     std::vector<qcow2::BitmapEntry>& entries,
                                     std::vector<uint64_t>& freed) QK_REQUIRES(mutex_);
  Status merge_into_locked(const BitmapRequest& request, std::vector<qcow2::BitmapEntry>& entries,
                           std::vector<uint64_t>& freed) QK_REQUIRES(mutex_);
  Status publish_bitmaps_locked(std::vector<qcow2::BitmapEntry> entries,
                                const std::vector<uint64_t>& freed_clusters) QK_REQUIRES(mutex_);
  Result<uint64_t> write_new_clusters_locked(ConstByteSpan bytes) QK_REQUIRES(mutex_);
  Status switch_header_locked(const qcow2::Header& next) QK_REQUIRES(mutex_);  // header_update.cpp
  Status set_backing_file(const std::string& name, const std::string& format,
                          std::shared_ptr<BlockDevice> backing);
  Mutex bitmap_mutex_;                  // guards tracked_bitmaps_[*].set_bits
  std::vector<TrackedBitmap> tracked_bitmaps_;  // fixed by the first write
  bool bitmaps_in_use_ = false;              // we set their in-use flags on disk

  // snapshot_ops.cpp
  Status create_snapshot(const std::string& name);
  Status delete_snapshot(const std::string& id_or_name);
  Status apply_snapshot(const std::string& id_or_name);
  Status for_each_reference_locked(const std::vector<uint64_t>& l1,
                                   const std::function<Status(uint64_t)>& visit, uint64_t limit) QK_REQUIRES(mutex_);
  Status adjust_tree_refcounts_locked(const std::vector<uint64_t>& l1, int64_t delta) QK_REQUIRES(mutex_);
  Status drop_reference_now_locked(uint64_t cluster) QK_REQUIRES(mutex_);
  Status update_copied_flags_locked() QK_REQUIRES(mutex_);
  Status settle_after_drops_locked() QK_REQUIRES(io_gate_, mutex_);
  Status publish_snapshot_table_locked(std::vector<qcow2::SnapshotEntry> entries) QK_REQUIRES(mutex_);
  Result<size_t> find_snapshot_locked(const std::string& id_or_name) const QK_REQUIRES(mutex_);
  Result<std::vector<uint64_t>> read_l1_locked(uint64_t offset, uint32_t entries) QK_REQUIRES(mutex_);

  Qcow2Details details() const;
  Status close();
  Status check_open(const char* op, bool mutating) const;

  // --- state -----------------------------------------------------------
  std::shared_ptr<BlockDevice> file_;
  std::shared_ptr<BlockDevice> data_file_;  // where data clusters live (usually file_)
  std::shared_ptr<BlockDevice> backing_;
  const CodecSet* codecs_;
  bool read_only_;
  bool closed_ = false;
  bool corrupt_ = false;
  bool first_write_done_ = false;

  // Written only with io_gate_ held exclusively and mutex_ held, so holding
  // either one is enough to read it (which the annotations cannot say).
  qcow2::Header header_;
  qcow2::SnapshotTable snapshots_ QK_GUARDED_BY(mutex_);
  qcow2::BitmapDirectory bitmaps_ QK_GUARDED_BY(mutex_);
  uint64_t cluster_size_ = 0;
  unsigned cluster_bits_ = 0;
  uint64_t l2_entries_ = 0;
  unsigned refcount_bits_ = 16;
  uint64_t refblock_entries_ = 0;
  uint64_t subcluster_size_ = 0;  // extended L2 only

  std::vector<uint64_t> l1_ QK_GUARDED_BY(mutex_);               // the active L1 table
  uint64_t l1_capacity_ QK_GUARDED_BY(mutex_) = 0;               // entries its clusters can hold
  std::set<uint64_t> dirty_l1_ QK_GUARDED_BY(mutex_);            // indices to write back
  std::vector<uint64_t> reftable_ QK_GUARDED_BY(mutex_);         // refcount table entries
  std::set<uint64_t> dirty_reftable_ QK_GUARDED_BY(mutex_);      // indices to write back
  std::unordered_set<uint64_t> metadata_clusters_ QK_GUARDED_BY(mutex_);  // cluster indices never to hand out as data
  qcow2::MetadataCache cache_ QK_GUARDED_BY(mutex_);
  // Refcount drops, as cluster indices: queued when a reference goes away in
  // memory (deferred_), and releasable once a flush has put that change on
  // disk; only releasable ones are applied.
  std::vector<uint64_t> deferred_decrements_ QK_GUARDED_BY(mutex_);
  std::vector<uint64_t> releasable_decrements_ QK_GUARDED_BY(mutex_);
  uint64_t free_hint_ QK_GUARDED_BY(mutex_) = 0;                 // no free cluster below this index
  uint64_t compressed_cursor_ QK_GUARDED_BY(mutex_) = 0;         // next free byte in a partly used cluster, or 0

  mutable Mutex mutex_;
  SharedMutex io_gate_;
  // Guest clusters whose new host clusters are being written outside the
  // lock; anything else that would change their mapping waits for them.
  std::unordered_set<uint64_t> in_flight_ QK_GUARDED_BY(mutex_);
  std::condition_variable in_flight_done_;
  bool in_flight_overlaps_locked(uint64_t first_cluster, uint64_t count) const QK_REQUIRES(mutex_);
  void wait_for_in_flight_locked(MutexLock& lock, uint64_t offset, uint64_t length) QK_REQUIRES(mutex_);
};

}  // namespace qcowkit
