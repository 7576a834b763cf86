// Changing persistent bitmaps on request (qemu-img bitmap): add, remove,
// clear, enable, disable and merge.
//
// Crash safety: a change never edits the directory or a table in place.
// The new tables and data clusters, then the new directory, go to fresh
// clusters; a barrier makes them and their raised refcounts durable; one
// header write switches the bitmaps extension to the new directory (adding
// or removing the extension and the autoclear bit with it); a barrier makes
// the switch durable; only then are the old directory, tables and data
// clusters freed. A power cut at any point leaves the old or the new
// directory, at worst with leaked clusters.
//
// Each change takes the image for itself, as the snapshot operations do:
// it waits for requests in flight and holds io_gate_ and mutex_ throughout.
// If this session already writes (the bitmaps are being tracked), the bits
// it collected are stored first and tracking resumes on the new directory
// before the locks are released, so no write goes unrecorded.
#include <algorithm>

#include "qcow2/image_impl.hpp"
#include "util/endian.hpp"
#include "util/hex.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {

BitmapEntry* find(std::vector<BitmapEntry>& entries, const std::string& name) {
  for (BitmapEntry& e : entries)
    if (e.info.name == name) return &e;
  return nullptr;
}

Error not_found(const std::string& name) {
  return make_error(ENOENT, "dirty bitmap '" + name + "' not found");
}

// Sets bits [from, to) of `bits` (bit 0 is the least significant of byte
// 0, as the spec orders them), whole bytes at a time where it can.
void set_bit_range(std::vector<uint8_t>& bits, uint64_t from, uint64_t to) {
  while (from < to && from % 8 != 0) {
    bits[from / 8] |= static_cast<uint8_t>(1u << (from % 8));
    ++from;
  }
  if (to - from >= 8) {
    std::fill(bits.begin() + static_cast<std::ptrdiff_t>(from / 8),
              bits.begin() + static_cast<std::ptrdiff_t>(to / 8), uint8_t{0xff});
    from = to / 8 * 8;
  }
  for (; from < to; ++from) bits[from / 8] |= static_cast<uint8_t>(1u << (from % 8));
}

Status usable(const BitmapEntry& e) {
  if (e.info.flags & kBitmapInUse)
    return make_error(EINVAL, "bitmap '" + e.info.name + "' is inconsistent (in use when the image "
                              "was last closed) and cannot be used; it can only be removed");
  if (e.type != kBitmapTypeDirtyTracking || e.extra_size != 0)
    return make_error(ENOTSUP, "bitmap '" + e.info.name + "' is of a kind qcowkit cannot change");
  return {};
}

}  // namespace

// Writes `bytes` (padded to whole clusters) to newly allocated clusters,
// claimed as metadata, and returns where.
Result<uint64_t> Qcow2Image::Impl::write_new_clusters_locked(ConstByteSpan bytes) {
  const uint64_t clusters = (bytes.size() + cluster_size_ - 1) / cluster_size_;
  if (clusters == 0) return uint64_t{0};
  QK_ASSIGN_OR_RETURN(uint64_t offset, allocate_clusters_locked(clusters));
  for (uint64_t c = 0; c < clusters; ++c) metadata_clusters_.insert(offset / cluster_size_ + c);
  std::vector<uint8_t> padded(clusters * cluster_size_, 0);
  std::copy(bytes.begin(), bytes.end(), padded.begin());
  QK_TRY(file_->write(offset, padded));
  return offset;
}

Status Qcow2Image::Impl::publish_bitmaps_locked(std::vector<BitmapEntry> entries,
                                                const std::vector<uint64_t>& freed_clusters) {
  if (entries.size() > kMaxBitmaps)
    return make_error(EFBIG, "an image holds at most " + std::to_string(kMaxBitmaps) + " bitmaps");
  const std::vector<uint8_t> directory = encode_bitmap_directory(entries);
  if (directory.size() > kMaxBitmapDirectoryBytes)
    return make_error(EFBIG, "the bitmap directory would be larger than " +
                                 std::to_string(kMaxBitmapDirectoryBytes) + " bytes");
  QK_ASSIGN_OR_RETURN(uint64_t offset, write_new_clusters_locked(directory));
  // The new directory, its tables and data, and their refcounts: durable.
  QK_TRY(flush_locked());

  Header next = header_;
  if (entries.empty()) {
    next.bitmaps.reset();
    next.autoclear_features &= ~kAutoclearBitmaps;
  } else {
    next.bitmaps = BitmapsExtension{static_cast<uint32_t>(entries.size()), directory.size(), offset};
    next.autoclear_features |= kAutoclearBitmaps;
  }
  // The old directory is ours to free only if it was counted (a directory
  // left by a program that cleared the autoclear bit is someone's leak).
  std::vector<uint64_t> freed = freed_clusters;
  if (header_.bitmaps && (header_.autoclear_features & kAutoclearBitmaps)) {
    const uint64_t first = header_.bitmaps->directory_offset / cluster_size_;
    const uint64_t last = (header_.bitmaps->directory_offset + header_.bitmaps->directory_size - 1) /
                          cluster_size_;
    for (uint64_t c = first; c <= last && header_.bitmaps->directory_size; ++c)
      freed.push_back(c * cluster_size_);
  }
  QK_TRY(switch_header_locked(next));
  bitmaps_.entries = std::move(entries);

  // The switch is durable: nothing on disk names the old clusters.
  std::sort(freed.begin(), freed.end());
  freed.erase(std::unique(freed.begin(), freed.end()), freed.end());
  for (uint64_t host : freed) QK_TRY(drop_reference_now_locked(host / cluster_size_));
  return flush_locked();
}

Status Qcow2Image::Impl::change_bitmaps(const char* op, const BitmapRequest& request) {
  QK_TRY(check_open(op, true));
  WriterLock gate(io_gate_);
  MutexLock lock(mutex_);
  if (header_.version < 3)
    return make_error(ENOTSUP, std::string(op) + ": qcow2 v2 (compat=0.10) images cannot store "
                                                 "persistent bitmaps; upgrade with compat=1.1");
  const bool consistent = header_.autoclear_features & kAutoclearBitmaps;
  if (header_.bitmaps && consistent && bitmaps_.entries.size() != header_.bitmaps->nb_bitmaps)
    return make_error(EINVAL, std::string(op) + ": the bitmap directory could not be read");

  // Refuse before anything is written if the header could not name a
  // directory (the extension must fit in the first cluster).
  {
    std::vector<uint8_t> fixed(header_.header_length);
    QK_TRY(file_->read(0, fixed));
    Header probe = header_;
    probe.bitmaps = BitmapsExtension{1, 0, 0};
    auto area = encode_header_area(fixed, probe);
    if (!area.ok())
      return with_context(std::move(area).error(), std::string(op) + ": no room for a bitmap directory");
  }

  // Bits this session collected go into the old bitmaps first; tracking
  // restarts on the new directory whatever happens below.
  const bool tracking = first_write_done_;
  Status st = persist_bitmaps_locked();
  if (st.ok()) {
    std::vector<BitmapEntry> entries = consistent ? bitmaps_.entries : std::vector<BitmapEntry>{};
    std::vector<uint64_t> freed;
    st = apply_bitmap_request_locked(request, entries, freed);
    if (st.ok()) st = publish_bitmaps_locked(std::move(entries), freed);
  }
  if (tracking) {
    first_write_done_ = false;
    Status resumed = prepare_first_write_locked();
    if (st.ok()) st = resumed;
  }
  return st;
}

// Changes `entries` as asked, writing any new table and data clusters;
// `freed` receives the clusters to free once the new directory is durable.
Status Qcow2Image::Impl::apply_bitmap_request_locked(const BitmapRequest& request,
                                                     std::vector<BitmapEntry>& entries,
                                                     std::vector<uint64_t>& freed) {
  const std::string& name = request.name;
  if (request.kind == BitmapRequest::merge) return merge_into_locked(request, entries, freed);
  if (request.kind == BitmapRequest::add) {
    if (name.empty()) return make_error(EINVAL, "bitmap name cannot be empty");
    if (name.size() > kMaxBitmapNameBytes)
      return make_error(EINVAL, "bitmap name is longer than the maximum of " +
                                    std::to_string(kMaxBitmapNameBytes) + " bytes");
    if (find(entries, name)) return make_error(EEXIST, "bitmap already exists: " + name);
    if (entries.size() >= kMaxBitmaps)
      return make_error(EFBIG, "the image already has the maximum of " +
                                   std::to_string(kMaxBitmaps) + " bitmaps");
    uint64_t granularity = request.granularity;
    if (granularity == 0)  // QEMU's default: the cluster size, kept within 4 KiB .. 64 KiB
      granularity = std::clamp<uint64_t>(cluster_size_, 4096, 65536);
    if ((granularity & (granularity - 1)) != 0 ||
        granularity < (uint64_t{1} << kMinBitmapGranularityBits) ||
        granularity > (uint64_t{1} << kMaxBitmapGranularityBits))
      return make_error(EINVAL, "granularity must be a power of 2 from 512 bytes to 2 GiB");
    unsigned bits = 0;
    while ((uint64_t{1} << bits) < granularity) ++bits;
    const uint64_t granules = (header_.size + granularity - 1) >> bits;
    const uint64_t table_size = bitmap_table_entries(header_.size, bits, cluster_size_);
    if (granules / 8 > kMaxBitmapBytes || table_size * 8 > (64u << 20))
      return make_error(EFBIG, "a bitmap of granularity " + std::to_string(granularity) +
                                   " would be too large for this image; use a larger granularity");
    BitmapEntry e;
    e.info.name = name;
    e.info.granularity_bits = bits;
    e.info.flags = request.enabled ? kBitmapAuto : 0;
    e.type = kBitmapTypeDirtyTracking;
    e.table_size = static_cast<uint32_t>(table_size);
    const std::vector<uint8_t> table(table_size * 8, 0);  // every granule clean
    QK_ASSIGN_OR_RETURN(e.table_offset, write_new_clusters_locked(table));
    entries.push_back(std::move(e));
    return {};
  }
  BitmapEntry* e = find(entries, name);
  if (!e) return not_found(name);
  switch (request.kind) {
    case BitmapRequest::remove: {  // also an inconsistent one: that is how it goes away
      QK_ASSIGN_OR_RETURN(freed, bitmap_clusters(*file_, header_, *e));
      entries.erase(entries.begin() + (e - entries.data()));
      return {};
    }
    case BitmapRequest::clear: {
      QK_TRY(usable(*e));
      QK_ASSIGN_OR_RETURN(freed, bitmap_clusters(*file_, header_, *e));
      const std::vector<uint8_t> table(uint64_t{e->table_size} * 8, 0);
      QK_ASSIGN_OR_RETURN(e->table_offset, write_new_clusters_locked(table));
      return {};
    }
    case BitmapRequest::enable:
    case BitmapRequest::disable:
      QK_TRY(usable(*e));
      e->info.flags = request.kind == BitmapRequest::enable ? (e->info.flags | kBitmapAuto)
                                                            : (e->info.flags & ~kBitmapAuto);
      return {};
    default:
      return make_error(EINVAL, "unknown bitmap request");
  }
}

// ORs a source's dirty ranges into the target: a target granule becomes
// dirty when any byte of it was dirty in the source (granularities may
// differ). The merged bitmap is written as a new table with new data
// clusters.
Status Qcow2Image::Impl::merge_into_locked(const BitmapRequest& request,
                                           std::vector<BitmapEntry>& entries,
                                           std::vector<uint64_t>& freed) {
  const std::vector<Extent>* source_ranges = request.source_ranges;
  uint64_t source_size = request.source_size;
  std::vector<Extent> own;
  if (request.source_name) {
    BitmapEntry* s = find(entries, *request.source_name);
    if (!s) return not_found(*request.source_name);
    QK_TRY(usable(*s));
    QK_ASSIGN_OR_RETURN(own, bitmap_ranges_locked(*s));
    source_ranges = &own;
    source_size = header_.size;
  }
  if (!source_ranges) return make_error(EINVAL, "bitmap merge: no source");
  BitmapEntry* e = find(entries, request.name);
  if (!e) return not_found(request.name);
  QK_TRY(usable(*e));
  if (source_size != header_.size)
    return make_error(EINVAL, "bitmaps are of different sizes (destination size is " +
                                  std::to_string(header_.size) + ", source size is " +
                                  std::to_string(source_size) + ") and can't be merged");
  QK_ASSIGN_OR_RETURN(std::vector<Extent> current, bitmap_ranges_locked(*e));
  QK_ASSIGN_OR_RETURN(freed, bitmap_clusters(*file_, header_, *e));

  const unsigned gbits = e->info.granularity_bits;
  const uint64_t bits_per_cluster = cluster_size_ * 8;
  std::vector<uint8_t> table(uint64_t{e->table_size} * 8, 0);
  std::vector<uint8_t> cluster(cluster_size_);
  // Both lists are sorted: each is walked once, across all data clusters.
  struct Cursor {
    const std::vector<Extent>* ranges;
    size_t next = 0;
  } cursors[2] = {{&current}, {source_ranges}};
  for (uint64_t i = 0; i < e->table_size; ++i) {
    std::fill(cluster.begin(), cluster.end(), 0);
    const uint64_t first_granule = i * bits_per_cluster;
    const uint64_t span_start = first_granule << gbits;
    const uint64_t span_end = std::min(header_.size, (first_granule + bits_per_cluster) << gbits);
    bool any = false;
    for (Cursor& c : cursors) {
      const std::vector<Extent>& ranges = *c.ranges;
      while (c.next < ranges.size() && ranges[c.next].offset + ranges[c.next].length <= span_start) ++c.next;
      for (size_t k = c.next; k < ranges.size() && ranges[k].offset < span_end; ++k) {
        if (ranges[k].kind != ExtentKind::data || ranges[k].length == 0) continue;
        const uint64_t from = std::max(ranges[k].offset, span_start);
        const uint64_t to = std::min(ranges[k].offset + ranges[k].length, span_end);
        if (from >= to) continue;
        set_bit_range(cluster, (from >> gbits) - first_granule, ((to - 1) >> gbits) + 1 - first_granule);
        any = true;
      }
    }
    if (!any) continue;  // entry 0: every granule clean
    QK_ASSIGN_OR_RETURN(uint64_t host, write_new_clusters_locked(cluster));
    store_be64(table.data() + i * 8, host);
  }
  QK_ASSIGN_OR_RETURN(e->table_offset, write_new_clusters_locked(table));
  return {};
}

}  // namespace qcowkit
