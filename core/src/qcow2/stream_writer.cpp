// The qcow2 stream writer (qcowkit/qcow2_stream.hpp): a scan pass that
// learns which clusters hold data and how large each is stored, a layout
// computed from that alone, then the metadata and a second pass writing the
// data in guest order. Everything here only appends to the sink.
#include "qcowkit/qcow2_stream.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "qcow2/format.hpp"
#include "qcow2/header.hpp"
#include "qcow2/refcount_entry.hpp"
#include "qcowkit/mutex.hpp"
#include "qcowkit/qcow2_options.hpp"
#include "util/endian.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {

constexpr uint64_t kChunk = 1u << 20;
constexpr unsigned kSizeBits = 22;  // a stored size is at most 2 MiB (2^21)
constexpr uint64_t kSizeMask = (uint64_t{1} << kSizeBits) - 1;

uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

unsigned log2_exact(uint64_t v) {
  unsigned bits = 0;
  while ((uint64_t{1} << bits) < v) ++bits;
  return bits;
}

// One cluster holding data, as the scan found it: its guest cluster index
// and how many bytes it takes (the cluster size: stored plainly; fewer:
// compressed). One word each: QEMU's L1 limit keeps guest cluster indexes
// under 2^40, and a size needs 22 bits.
uint64_t pack_entry(uint64_t cluster, uint64_t size) { return (cluster << kSizeBits) | size; }
uint64_t entry_cluster(uint64_t e) { return e >> kSizeBits; }
uint64_t entry_size(uint64_t e) { return e & kSizeMask; }

// Where each stored cluster goes, relative to the start of the data area.
// The same sequence of sizes always gives the same offsets: the refcount
// blocks, the L2 tables and the data pass each replay it. Compressed streams
// are packed byte after byte, as QEMU packs them (one may run into the next
// host cluster); a host cluster is shared by at most `max_shared` streams,
// so its refcount fits the refcount width.
class Packer {
 public:
  Packer(uint64_t cluster_size, uint64_t max_shared) : cs_(cluster_size), max_shared_(max_shared) {}

  struct Place {
    uint64_t offset, first_cluster, last_cluster;  // relative to the data area
  };

  Place place(uint64_t size) {
    if (size >= cs_) {
      pos_ = round_up(pos_, cs_);
      shared_ = 0;
      const uint64_t at = pos_;
      pos_ += cs_;
      return {at, at / cs_, at / cs_};
    }
    if (pos_ % cs_ == 0) shared_ = 0;
    if (shared_ + 1 > max_shared_) {
      pos_ = round_up(pos_, cs_);
      shared_ = 0;
    }
    const uint64_t at = pos_;
    // A compressed stream owns its sectors: refcounts cover up to the end of
    // its last 512-byte sector.
    const uint64_t first = at / cs_, last = (round_up(at + size, kSectorSize) - 1) / cs_;
    shared_ = last > first ? 1 : shared_ + 1;
    pos_ = at + size;
    if (pos_ % cs_ == 0) shared_ = 0;
    return {at, first, last};
  }
  uint64_t end() const { return round_up(pos_, cs_); }  // the data area's length

 private:
  const uint64_t cs_, max_shared_;
  uint64_t pos_ = 0, shared_ = 0;
};

}  // namespace

struct Qcow2StreamWriter::State {
  enum class Phase { scan, cached, data, done, failed };

  State(BlockDevice& source, ByteSink& sink, const Qcow2StreamOptions& options)
      : source(source), sink(sink), options(options) {}

  BlockDevice& source;
  ByteSink& sink;
  const Qcow2StreamOptions options;
  const Codec* codec = nullptr;  // set when compressing

  // Geometry.
  uint64_t source_size = 0, virtual_size = 0, cs = 0;
  unsigned cluster_bits = 0, refcount_bits = 16;
  uint64_t l2_entries = 0, l1_entries = 0, max_shared = 0;

  // The scan's result: one word per stored cluster, in guest order. Only
  // the engine's in-order commits touch it (one at a time).
  std::vector<uint64_t> entries;

  // Layout, in clusters from the start of the file.
  uint64_t table_clusters = 0, block_count = 0, l1_clusters = 0, l2_count = 0;
  uint64_t data_cluster = 0, total_clusters = 0;

  // The scan's output kept for the data pass (options.cache_bytes): the
  // stored bytes of the first entries, in order, while they fit.
  std::vector<std::vector<uint8_t>> cache;
  uint64_t cached_bytes = 0;
  std::atomic<bool> caching{false};  // read by prepare on any thread; only ever turns false

  // The data pass.
  std::unique_ptr<Packer> packer;
  size_t cursor = 0;
  uint64_t data_begin = 0;        // the source offset the data pass starts at
  uint64_t first_uncached = 0;    // guest clusters below this came from the cache
  std::atomic<uint64_t> written{0};

  Phase phase = Phase::scan;
  std::unique_ptr<CopySink> scan_sink, data_sink;
  std::unique_ptr<CopyEngine> engine;
  Mutex engine_mutex;  // cancel() from another thread reaches the live engine
  CopyEngine* live QK_GUARDED_BY(engine_mutex) = nullptr;
  std::atomic<bool> cancelled{false};

  Status emit(ConstByteSpan bytes) {
    if (bytes.empty()) return {};
    if (auto st = sink.write(bytes); !st.ok())
      return with_context(st.error(), "qcow2 stream: writing at offset " + std::to_string(written.load()));
    written += bytes.size();
    return {};
  }
  Status emit_zeroes(uint64_t n) {
    static const std::vector<uint8_t> zeroes(64 * 1024, 0);
    while (n) {
      const uint64_t k = std::min<uint64_t>(n, zeroes.size());
      QK_TRY(emit(ConstByteSpan(zeroes.data(), k)));
      n -= k;
    }
    return {};
  }

  // Splits a chunk into one piece per cluster: `zero` for a hole, else
  // `length` = the stored size and, with keep_bytes, `packed` = the
  // compressed bytes. Runs on any thread. piece.start is the offset in the
  // chunk (chunks start on cluster boundaries: the engine's granule).
  Status classify(CopyChunk& chunk, bool keep_bytes) const {
    chunk.pieces.clear();
    if (chunk.offset % cs != 0)
      return make_error(EIO, "qcow2 stream: internal error: a chunk at " + std::to_string(chunk.offset) +
                                 " is not cluster aligned");
    // The image's last cluster may be cut short: its tail reads as zeroes.
    const uint64_t padded = round_up(chunk.length, cs);
    if (chunk.data.size() < padded) chunk.data.resize(padded);
    std::fill(chunk.data.begin() + chunk.length, chunk.data.begin() + padded, 0);
    for (uint64_t pos = 0; pos < chunk.length; pos += cs) {
      ConstByteSpan bytes(chunk.data.data() + pos, cs);
      if (options.detect_zeroes && is_all_zero(bytes)) {
        chunk.pieces.push_back({pos, 0, true, {}});
        continue;
      }
      CopyChunk::Piece piece{pos, cs, false, {}};
      if (codec) {
        auto packed = codec->compress(bytes, cs - 1);
        if (!packed.ok())
          return with_context(packed.error(), "qcow2 stream: compressing offset " +
                                                  std::to_string(chunk.offset + pos));
        if (!packed->empty()) {
          piece.length = packed->size();
          if (keep_bytes) piece.packed = std::move(packed).value();
        }
      }
      chunk.pieces.push_back(std::move(piece));
    }
    return {};
  }

  Status check_options();
  Status plan();
  Status write_metadata();
  Status write_cluster(const CopyChunk& chunk, const CopyChunk::Piece& piece);
  Status emit_stored(uint64_t size, ConstByteSpan bytes);
  Status finish_data();
  Status make_engine(CopySink& s, const char* operation, uint64_t begin, uint64_t progress_base);
  Status run_engine();
  // Between the passes: the layout and the metadata (start_data), what the
  // scan kept, `budget` bytes at a time (emit_cached), then the data pass
  // (after_cache); between_passes does all three at once.
  Status start_data();
  Status emit_cached(uint64_t budget);
  Status after_cache();
  Status between_passes();
  // Where the guest walk stands while the cache goes out (for progress).
  uint64_t cached_progress() const {
    return cursor < entries.size() ? std::min(source_size, entry_cluster(entries[cursor]) * cs) : source_size;
  }
  void drop_engine() {
    MutexLock lock(engine_mutex);
    live = nullptr;
    engine.reset();
  }
};

namespace {

// Pass 1: sizes only, appended in guest order.
class ScanSink final : public CopySink {
 public:
  explicit ScanSink(Qcow2StreamWriter::State& s) : s_(s) {}
  Status prepare(CopyChunk& chunk) override {
    QK_TRY(s_.classify(chunk, s_.caching));
    if (!s_.caching) chunk.data = {};  // the bytes are not needed any more
    return {};
  }
  Result<Flow> commit(CopyChunk& chunk) override {
    for (CopyChunk::Piece& p : chunk.pieces) {
      if (p.zero) continue;
      s_.entries.push_back(pack_entry((chunk.offset + p.start) / s_.cs, p.length));
      if (!s_.caching) continue;
      if (s_.cached_bytes + p.length > s_.options.cache_bytes) {
        // Only a prefix is kept: the data pass starts where it ends.
        s_.caching = false;
        continue;
      }
      s_.cached_bytes += p.length;
      if (p.length >= s_.cs)
        s_.cache.emplace_back(chunk.data.begin() + p.start, chunk.data.begin() + p.start + s_.cs);
      else  // an exact copy: the codec's buffer may be a whole cluster large
        s_.cache.emplace_back(p.packed.begin(), p.packed.end());
    }
    return Flow::proceed;
  }

 private:
  Qcow2StreamWriter::State& s_;
};

// Pass 2: the bytes, in guest order.
class DataSink final : public CopySink {
 public:
  explicit DataSink(Qcow2StreamWriter::State& s) : s_(s) {}
  Status prepare(CopyChunk& chunk) override { return s_.classify(chunk, true); }
  Result<Flow> commit(CopyChunk& chunk) override {
    for (const CopyChunk::Piece& p : chunk.pieces)
      if (!p.zero && (chunk.offset + p.start) / s_.cs >= s_.first_uncached) {
        QK_TRY(s_.write_cluster(chunk, p));
      }
    return Flow::proceed;
  }
  Status finish() override { return s_.finish_data(); }

 private:
  Qcow2StreamWriter::State& s_;
};

}  // namespace

Status Qcow2StreamWriter::State::check_options() {
  const Qcow2CreateOptions& o = options.layout;
  QK_TRY(validate_qcow2_create_options(o, false));
  if (o.extended_l2) return make_error(ENOTSUP, "qcow2 stream: extended_l2 is not supported when streaming");
  if (o.preallocation != Preallocation::off)
    return make_error(ENOTSUP, "qcow2 stream: preallocation is not supported when streaming");
  if (!o.backing_file.empty())
    return make_error(ENOTSUP, "qcow2 stream: a streamed image is self-contained; backing_file is not supported");
  const DeviceInfo info = source.info();
  source_size = info.size;
  virtual_size = round_up(source_size, kSectorSize);
  cs = o.cluster_size;
  cluster_bits = log2_exact(cs);
  refcount_bits = o.refcount_bits;
  l2_entries = cs / 8;
  l1_entries = (round_up(virtual_size, cs) / cs + l2_entries - 1) / l2_entries;
  if (l1_entries * 8 > kMaxL1Bytes)
    return make_error(EFBIG, "qcow2 stream: a " + std::to_string(virtual_size) +
                                 "-byte image needs an L1 table over 32 MiB at this cluster size");
  max_shared = std::min<uint64_t>(max_refcount(refcount_bits), cs);
  if (options.compress) {
    const CodecSet& codecs = options.codecs ? *options.codecs : builtin_codecs();
    codec = codecs.get(o.compression_type);
    if (!codec)
      return make_error(ENOTSUP, std::string("qcow2 stream: this build has no ") +
                                     to_string(o.compression_type) + " codec");
  }
  return {};
}

// The layout, from the scan alone (see the header for the order).
Status Qcow2StreamWriter::State::plan() {
  Packer p(cs, max_shared);
  uint64_t last_table = UINT64_MAX;
  l2_count = 0;
  for (uint64_t e : entries) {
    p.place(entry_size(e));
    const uint64_t t = entry_cluster(e) / l2_entries;
    if (t != last_table) ++l2_count;
    last_table = t;
  }
  const uint64_t data_clusters = p.end() / cs;
  // (An empty image has no L1 cluster: one that nothing references would
  // count as a leak.)
  l1_clusters = round_up(l1_entries * 8, cs) / cs;
  const RefcountLayout refcounts =
      refcount_layout_for(1 + l1_clusters + l2_count + data_clusters, cs, refcount_bits);
  table_clusters = refcounts.table_clusters;
  block_count = refcounts.blocks;
  if (table_clusters * cs > kMaxRefcountTableBytes)
    return make_error(EFBIG, "qcow2 stream: the refcount table would be larger than 8 MiB");
  data_cluster = 1 + table_clusters + block_count + l1_clusters + l2_count;
  total_clusters = data_cluster + data_clusters;
  if (total_clusters > kMaxOffset / cs) return make_error(EFBIG, "qcow2 stream: the image would be too large");
  return {};
}

Status Qcow2StreamWriter::State::write_metadata() {
  const Qcow2CreateOptions& o = options.layout;
  Header h;
  h.version = static_cast<uint32_t>(o.version);
  h.cluster_bits = cluster_bits;
  h.size = virtual_size;
  h.refcount_order = log2_exact(refcount_bits);
  if (o.lazy_refcounts) h.compatible_features |= kCompatLazyRefcounts;
  if (o.compression_type == CompressionType::zstd) {
    h.incompatible_features |= kIncompatCompression;
    h.compression_type = 1;
  }
  h.l1_size = static_cast<uint32_t>(l1_entries);
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  const uint64_t blocks_at = 1 + table_clusters;
  const uint64_t l1_at = blocks_at + block_count;
  const uint64_t l2_at = l1_at + l1_clusters;
  h.l1_table_offset = l1_at * cs;
  QK_ASSIGN_OR_RETURN(std::vector<uint8_t> buffer, serialize_header(h));
  buffer.resize(cs, 0);
  QK_TRY(emit(buffer));

  // Refcount table, one cluster at a time.
  for (uint64_t c = 0; c < table_clusters; ++c) {
    std::fill(buffer.begin(), buffer.end(), 0);
    for (uint64_t i = 0; i < cs / 8; ++i) {
      const uint64_t b = c * (cs / 8) + i;
      if (b < block_count) store_be64(buffer.data() + i * 8, (blocks_at + b) * cs);
    }
    QK_TRY(emit(buffer));
  }

  // Refcount blocks: 1 for every metadata cluster, and for the data area
  // the packer's replay (a compressed stream counts once in every host
  // cluster it touches).
  const uint64_t per_block = cs * 8 / refcount_bits;
  const uint64_t limit = max_refcount(refcount_bits);
  Packer replay(cs, max_shared);
  size_t next = 0;
  bool pending = false;
  uint64_t first = 0, last = 0;
  for (uint64_t b = 0; b < block_count; ++b) {
    std::fill(buffer.begin(), buffer.end(), 0);
    const uint64_t lo = b * per_block, hi = std::min((b + 1) * per_block, total_clusters);
    for (uint64_t c = lo; c < std::min(hi, data_cluster); ++c) set_refcount_entry(buffer.data(), c - lo, refcount_bits, 1);
    for (;;) {
      if (!pending) {
        if (next == entries.size()) break;
        const Packer::Place at = replay.place(entry_size(entries[next++]));
        first = data_cluster + at.first_cluster;
        last = data_cluster + at.last_cluster;
        pending = true;
      }
      if (first >= hi) break;
      for (uint64_t c = std::max(first, lo); c <= std::min(last, hi - 1); ++c) {
        const uint64_t v = get_refcount_entry(buffer.data(), c - lo, refcount_bits) + 1;
        if (v > limit) return make_error(EIO, "qcow2 stream: internal error: refcount overflow");
        set_refcount_entry(buffer.data(), c - lo, refcount_bits, v);
      }
      if (last >= hi) break;  // the rest of it counts in the next block
      pending = false;
    }
    QK_TRY(emit(buffer));
  }

  // L1: every table in use, in guest order right after it.
  {
    std::vector<uint8_t> l1(l1_clusters * cs, 0);
    uint64_t k = 0, last_table = UINT64_MAX;
    for (uint64_t e : entries) {
      const uint64_t t = entry_cluster(e) / l2_entries;
      if (t == last_table) continue;
      last_table = t;
      store_be64(l1.data() + t * 8, ((l2_at + k++) * cs) | kCopied);
    }
    QK_TRY(emit(l1));
  }

  // L2 tables, each filled from the packer's replay.
  Packer l2_replay(cs, max_shared);
  for (size_t i = 0; i < entries.size();) {
    const uint64_t t = entry_cluster(entries[i]) / l2_entries;
    std::fill(buffer.begin(), buffer.end(), 0);
    for (; i < entries.size() && entry_cluster(entries[i]) / l2_entries == t; ++i) {
      const uint64_t size = entry_size(entries[i]);
      const uint64_t host = data_cluster * cs + l2_replay.place(size).offset;
      const uint64_t entry = size >= cs ? (host | kCopied) : encode_compressed(host, size, cluster_bits);
      store_be64(buffer.data() + (entry_cluster(entries[i]) % l2_entries) * 8, entry);
    }
    QK_TRY(emit(buffer));
  }
  if (written != data_cluster * cs)
    return make_error(EIO, "qcow2 stream: internal error: the metadata took " + std::to_string(written.load()) +
                               " bytes, not " + std::to_string(data_cluster * cs));
  packer = std::make_unique<Packer>(cs, max_shared);
  cursor = 0;
  return {};
}

Status Qcow2StreamWriter::State::write_cluster(const CopyChunk& chunk, const CopyChunk::Piece& piece) {
  const uint64_t cluster = (chunk.offset + piece.start) / cs;
  if (cursor >= entries.size() || entries[cursor] != pack_entry(cluster, piece.length))
    return make_error(EIO, "qcow2 stream: the source changed between the two passes (at offset " +
                               std::to_string(cluster * cs) + "); the output is incomplete");
  ++cursor;
  if (piece.length >= cs) return emit_stored(cs, ConstByteSpan(chunk.data.data() + piece.start, cs));
  return emit_stored(piece.length, ConstByteSpan(piece.packed));
}

// One stored cluster at its place in the data area (after any padding).
Status Qcow2StreamWriter::State::emit_stored(uint64_t size, ConstByteSpan bytes) {
  const uint64_t host = data_cluster * cs + packer->place(size).offset;
  QK_TRY(emit_zeroes(host - written));
  return emit(bytes);
}

Status Qcow2StreamWriter::State::finish_data() {
  if (cursor != entries.size())
    return make_error(EIO, "qcow2 stream: the source changed between the two passes (data ended early); "
                           "the output is incomplete");
  return emit_zeroes(total_clusters * cs - written);
}

Status Qcow2StreamWriter::State::make_engine(CopySink& s, const char* operation, uint64_t begin,
                                             uint64_t progress_base) {
  CopyEngineOptions e;
  const uint64_t sector = std::max<uint32_t>(source.info().sector_size, 1);
  e.alignment = sector;
  e.granule = std::max<uint64_t>(cs, sector);
  e.chunk_size = round_up(std::max(kChunk, e.granule), e.granule);
  e.begin = begin / e.granule * e.granule;
  e.use_extents = options.detect_zeroes;
  e.workers = options.workers ? options.workers : CopyEngine::kDefaultWorkers;
  e.in_order = true;
  e.operation = operation;
  if (options.progress) {
    const ProgressFn fn = options.progress;
    const uint64_t total = 2 * source_size;
    e.progress = [fn, progress_base, total](uint64_t done, uint64_t) { fn(progress_base + done, total); };
  }
  QK_ASSIGN_OR_RETURN(auto made, CopyEngine::create(source, s, e));
  MutexLock lock(engine_mutex);
  engine = std::move(made);
  live = engine.get();
  if (cancelled) engine->cancel();
  return {};
}

Status Qcow2StreamWriter::State::start_data() {
  drop_engine();
  if (cancelled) return make_error(ECANCELED, "qcow2 stream: cancelled");
  QK_TRY(plan());
  return write_metadata();
}

// What the scan kept goes out first, neither read nor compressed again.
Status Qcow2StreamWriter::State::emit_cached(uint64_t budget) {
  uint64_t sent = 0;
  while (cursor < cache.size() && sent < budget) {
    if (cancelled) return make_error(ECANCELED, "qcow2 stream: cancelled");
    QK_TRY(emit_stored(entry_size(entries[cursor]), ConstByteSpan(cache[cursor])));
    sent += cache[cursor].size();
    cache[cursor] = {};
    ++cursor;
  }
  return {};
}

Status Qcow2StreamWriter::State::after_cache() {
  cache = {};
  if (cursor == entries.size()) return finish_data();  // no data pass needed
  first_uncached = entry_cluster(entries[cursor]);
  data_begin = first_uncached * cs;
  data_sink = std::make_unique<DataSink>(*this);
  return make_engine(*data_sink, "qcow2 stream: reading the source", data_begin, source_size + data_begin);
}

Status Qcow2StreamWriter::State::between_passes() {
  QK_TRY(start_data());
  QK_TRY(emit_cached(UINT64_MAX));
  return after_cache();
}

Result<std::unique_ptr<Qcow2StreamWriter>> Qcow2StreamWriter::create(BlockDevice& source, ByteSink& sink,
                                                                     const Qcow2StreamOptions& options) {
  auto state = std::make_unique<State>(source, sink, options);
  QK_TRY(state->check_options());
  state->scan_sink = std::make_unique<ScanSink>(*state);
  state->caching = options.cache_bytes > 0;
  QK_TRY(state->make_engine(*state->scan_sink, "qcow2 stream: scanning the source", 0, 0));
  return std::unique_ptr<Qcow2StreamWriter>(new Qcow2StreamWriter(std::move(state)));
}

Qcow2StreamWriter::Qcow2StreamWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
Qcow2StreamWriter::~Qcow2StreamWriter() = default;

Status Qcow2StreamWriter::run() {
  State& s = *state_;
  if (s.phase == State::Phase::done) return {};
  if (s.phase == State::Phase::failed) return make_error(EINVAL, "qcow2 stream: an earlier step failed");
  Status st;
  if (s.phase == State::Phase::scan) {
    st = s.engine->run();
    if (st.ok()) st = s.between_passes();
    if (st.ok()) s.phase = State::Phase::data;
  }
  if (st.ok() && s.engine) st = s.engine->run();
  s.drop_engine();
  s.phase = st.ok() ? State::Phase::done : State::Phase::failed;
  return st;
}

Result<CopyProgress> Qcow2StreamWriter::step(uint64_t budget) {
  State& s = *state_;
  const uint64_t total = 2 * s.source_size;
  if (s.phase == State::Phase::done) return CopyProgress{total, total, true};
  if (s.phase == State::Phase::failed) return make_error(EINVAL, "qcow2 stream: an earlier step failed");
  auto fail = [&s](Status st) -> Result<CopyProgress> {
    s.drop_engine();
    s.phase = State::Phase::failed;
    return st.error();
  };
  if (s.phase == State::Phase::cached) {
    // A share of what the scan kept, so a step stays bounded however much
    // that is; then the data pass, if anything was not kept.
    if (auto st = s.emit_cached(budget); !st.ok()) return fail(st);
    if (s.cursor < s.cache.size()) return CopyProgress{s.source_size + s.cached_progress(), total, false};
    if (auto st = s.after_cache(); !st.ok()) return fail(st);
    s.phase = State::Phase::data;
    if (!s.engine) {  // the scan kept everything: nothing left to read
      s.phase = State::Phase::done;
      return CopyProgress{total, total, true};
    }
    return CopyProgress{s.source_size + s.data_begin, total, false};
  }
  auto p = s.engine->step(budget);
  if (!p.ok()) return fail(std::move(p).error());
  if (s.phase == State::Phase::scan) {
    if (p->finished) {
      if (auto st = s.start_data(); !st.ok()) return fail(st);
      s.phase = State::Phase::cached;
    }
    return CopyProgress{p->done, total, false};
  }
  if (p->finished) {
    s.drop_engine();
    s.phase = State::Phase::done;
  }
  const uint64_t done = s.phase == State::Phase::done ? total : s.source_size + s.data_begin + p->done;
  return CopyProgress{done, total, s.phase == State::Phase::done};
}

void Qcow2StreamWriter::cancel() {
  State& s = *state_;
  s.cancelled = true;
  MutexLock lock(s.engine_mutex);
  if (s.live) s.live->cancel();
}

uint64_t Qcow2StreamWriter::bytes_written() const { return state_->written; }

}  // namespace qcowkit
