#include "copy_pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace qcowkit::cli {
namespace {

constexpr uint64_t kChunk = 1u << 20;  // bytes a job covers (at least one granule)
constexpr uint64_t kZeroScanUnit = 512;

struct Job {
  uint64_t sequence = 0;
  uint64_t offset = 0, length = 0;
};

uint64_t align_down(uint64_t v, uint64_t a) { return v / a * a; }

// Hands out jobs in source order. A job covers data (or, with min_sparse 0,
// anything); zero and hole extents of at least one granule are skipped.
class JobSource {
 public:
  JobSource(BlockDevice& src, uint64_t granule, uint64_t chunk, bool write_everything)
      : src_(src), size_(src.info().size), granule_(granule), chunk_(chunk),
        write_everything_(write_everything) {}

  // Next job, or nullopt at the end. `skipped` grows by the bytes passed over.
  Result<std::optional<Job>> next(uint64_t& skipped) {
    while (cursor_ < size_) {
      if (!write_everything_) {
        QK_ASSIGN_OR_RETURN(Extent e, extent_at(cursor_));
        if (e.kind != ExtentKind::data) {
          uint64_t end = std::min(size_, e.offset + e.length);
          uint64_t skip_to = end == size_ ? end : align_down(end, granule_);
          if (skip_to > cursor_) {
            skipped += skip_to - cursor_;
            cursor_ = skip_to;
            continue;
          }
        }
      }
      Job job;
      job.sequence = sequence_++;
      job.offset = cursor_;
      job.length = std::min(size_ - cursor_, chunk_ - cursor_ % chunk_);
      // End the job where the data ends (granule aligned), so a following
      // hole is skipped rather than read.
      if (!write_everything_) {
        QK_ASSIGN_OR_RETURN(Extent e, extent_at(cursor_));
        uint64_t data_end = e.offset + e.length;
        uint64_t aligned_end = std::max(cursor_ + granule_, (data_end + granule_ - 1) / granule_ * granule_);
        job.length = std::min(job.length, aligned_end - cursor_);
        job.length = std::min(job.length, size_ - cursor_);
      }
      cursor_ += job.length;
      return std::optional<Job>(job);
    }
    return std::optional<Job>();
  }

 private:
  // The extent containing `offset` (from a cached batch of extents).
  Result<Extent> extent_at(uint64_t offset) {
    for (;;) {
      while (index_ < cache_.size() && cache_[index_].offset + cache_[index_].length <= offset)
        ++index_;
      if (index_ < cache_.size() && cache_[index_].offset <= offset) return cache_[index_];
      QK_ASSIGN_OR_RETURN(cache_, src_.extents(offset, size_ - offset));
      index_ = 0;
      if (cache_.empty() || cache_.front().offset != offset || cache_.front().length == 0)
        return make_error(EIO, "extents of the source did not start at offset " +
                                   std::to_string(offset));
    }
  }

  BlockDevice& src_;
  uint64_t size_, granule_, chunk_;
  bool write_everything_;
  uint64_t cursor_ = 0, sequence_ = 0;
  std::vector<Extent> cache_;
  size_t index_ = 0;
};

// What one job leaves to write: the chunk as read, and the pieces of it
// that go to the destination (plainly, or packed by compress_cluster).
struct PendingWrite {
  struct Piece {
    uint64_t start = 0, length = 0;  // in data
    std::vector<uint8_t> packed;     // empty: write data[start, start + length) plainly
  };
  uint64_t sequence = 0;
  uint64_t offset = 0;  // of data[0] in the device
  std::vector<uint8_t> data;
  std::vector<Piece> pieces;
};

class Pipeline {
 public:
  Pipeline(BlockDevice& src, BlockDevice& dst, const CopyPipelineOptions& options)
      : src_(src), dst_(dst), options_(options), src_size_(src.info().size),
        dst_size_(dst.info().size),
        granule_(std::max<uint64_t>(options.granule ? options.granule : 4096, kZeroScanUnit)),
        jobs_(src, granule_, std::max<uint64_t>(kChunk, granule_), options.min_sparse == 0) {}

  Status run() {
    if (dst_size_ < src_size_)
      return make_error(ERANGE, "destination (" + std::to_string(dst_size_) +
                                    " bytes) is smaller than the source (" +
                                    std::to_string(src_size_) + " bytes)");
    // One thread per core, but at least four: part of each thread's time goes
    // to I/O, and on a shared machine a few more runnable threads keep the
    // cores we are given busy (qemu-img runs four compression threads too).
    unsigned threads = options_.threads ? options_.threads
                                        : std::max(4u, std::thread::hardware_concurrency());
    threads = std::clamp(threads, 1u, 64u);
    max_ready_ = 2 * threads;
    std::vector<std::thread> workers;
    for (unsigned i = 0; i < threads; ++i) workers.emplace_back([this] { work(); });
    for (auto& t : workers) t.join();
    if (error_) return *error_;
    report_progress(0);
    return {};
  }

 private:
  bool compressing() const { return options_.compress_cluster && options_.store_packed; }

  void fail(Error error) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(error);
    failed_ = true;
    room_.notify_all();
  }

  // Counting and reporting under one lock keeps the reported totals in
  // order when several workers finish at once.
  void report_progress(uint64_t bytes) {
    std::lock_guard lock(progress_mutex_);
    const uint64_t done = done_ += bytes;
    if (options_.progress) options_.progress(std::min(done, src_size_), src_size_);
  }

  void work() {
    while (!failed_) {
      uint64_t skipped = 0;
      std::optional<Job> job;
      {
        std::lock_guard lock(source_mutex_);
        auto next = jobs_.next(skipped);
        if (!next.ok()) return fail(std::move(next).error());
        job = *next;
      }
      if (skipped) report_progress(skipped);
      if (!job) return;
      auto pending = prepare(*job);
      if (!pending.ok()) return fail(std::move(pending).error());
      Status written = submit(std::move(pending).value());
      if (!written.ok()) return fail(std::move(written).error());
      report_progress(job->length);
    }
  }

  // Reads a job and decides what to write (compressing, when asked): the
  // part of the work that runs on every thread at once.
  Result<PendingWrite> prepare(const Job& job) {
    PendingWrite w;
    w.sequence = job.sequence;
    w.offset = job.offset;
    // The destination may be longer than the source (rounded up to its
    // sector size): the last job covers the padding too, as zeroes.
    uint64_t length = job.length;
    if (job.offset + length == src_size_) length = std::min(dst_size_, align_up_dst(src_size_)) - job.offset;
    w.data.assign(length, 0);
    Status read = src_.read(job.offset, ByteSpan(w.data.data(), job.length));
    if (!read.ok()) return with_context(read.error(), "reading the source");
    if (compressing()) {
      QK_TRY(compress_clusters(w));
    } else {
      for (auto [start, n] : data_segments(w.data)) w.pieces.push_back({start, n, {}});
    }
    return w;
  }

  uint64_t align_up_dst(uint64_t v) const {
    uint64_t s = std::max<uint64_t>(dst_.info().sector_size, 1);
    return (v + s - 1) / s * s;
  }

  Status compress_clusters(PendingWrite& w) {
    std::vector<uint8_t> padded;
    for (uint64_t pos = 0; pos < w.data.size(); pos += granule_) {
      uint64_t n = std::min<uint64_t>(granule_, w.data.size() - pos);
      ConstByteSpan cluster(w.data.data() + pos, n);
      if (options_.min_sparse && is_all_zero(cluster)) continue;
      if (n < granule_) {
        padded.assign(granule_, 0);
        std::copy(cluster.begin(), cluster.end(), padded.begin());
        cluster = ConstByteSpan(padded);
      }
      auto packed = options_.compress_cluster(cluster);
      if (!packed.ok())
        return with_context(packed.error(), "compressing offset " + std::to_string(w.offset + pos));
      w.pieces.push_back({pos, n, std::move(packed).value()});
    }
    return {};
  }

  // Hands a prepared job over for writing in source order. Jobs that finish
  // early wait in a bounded queue, so a thread that is slow (or descheduled)
  // does not stall the others; whichever thread finds the next job ready
  // writes every ready job in a row.
  Status submit(PendingWrite w) {
    if (!options_.in_order && !compressing()) return write_out(w);
    std::unique_lock lock(mutex_);
    room_.wait(lock, [&] {
      return failed_ || ready_.size() < max_ready_ || w.sequence == next_to_write_;
    });
    if (failed_) return {};
    ready_.emplace(w.sequence, std::move(w));
    if (writing_) return {};
    writing_ = true;
    Status result;
    for (;;) {
      auto it = ready_.find(next_to_write_);
      if (failed_ || it == ready_.end()) break;
      PendingWrite next = std::move(it->second);
      ready_.erase(it);
      lock.unlock();
      result = write_out(next);
      lock.lock();
      if (!result.ok()) break;
      ++next_to_write_;
      room_.notify_all();
    }
    writing_ = false;
    return result;
  }

  Status write_out(const PendingWrite& w) {
    for (const auto& piece : w.pieces) {
      const uint64_t offset = w.offset + piece.start;
      Status st = piece.packed.empty()
                      ? dst_.write(offset, ConstByteSpan(w.data.data() + piece.start, piece.length))
                      : options_.store_packed(offset, ConstByteSpan(piece.packed));
      if (!st.ok()) return with_context(st.error(), "writing the destination");
    }
    return {};
  }

  // The parts of `buffer` to write: everything but zero runs of at least
  // min_sparse bytes (scanned in 512-byte units), as (start, length) pairs.
  std::vector<std::pair<uint64_t, uint64_t>> data_segments(const std::vector<uint8_t>& buffer) const {
    std::vector<std::pair<uint64_t, uint64_t>> segments;
    const uint64_t size = buffer.size();
    if (options_.min_sparse == 0) {
      segments.push_back({0, size});
      return segments;
    }
    auto unit_is_zero = [&](uint64_t at) {
      return is_all_zero(ConstByteSpan(buffer.data() + at, std::min(kZeroScanUnit, size - at)));
    };
    uint64_t segment_start = 0, pos = 0;
    while (pos < size) {
      if (!unit_is_zero(pos)) {
        pos += kZeroScanUnit;
        continue;
      }
      uint64_t run_end = pos;
      while (run_end < size && unit_is_zero(run_end)) run_end += kZeroScanUnit;
      run_end = std::min(run_end, size);
      if (run_end - pos >= options_.min_sparse) {
        if (pos > segment_start) segments.push_back({segment_start, pos - segment_start});
        segment_start = run_end;
      }
      pos = run_end;
    }
    if (size > segment_start) segments.push_back({segment_start, size - segment_start});
    return segments;
  }

  BlockDevice& src_;
  BlockDevice& dst_;
  const CopyPipelineOptions& options_;
  const uint64_t src_size_, dst_size_, granule_;

  std::mutex source_mutex_;
  JobSource jobs_;

  std::mutex mutex_;  // guards everything below but the atomics
  std::condition_variable room_;
  std::map<uint64_t, PendingWrite> ready_;  // prepared, waiting for their turn
  size_t max_ready_ = 4;
  uint64_t next_to_write_ = 0;
  bool writing_ = false;
  std::optional<Error> error_;
  std::atomic<bool> failed_{false};

  std::mutex progress_mutex_;
  std::atomic<uint64_t> done_{0};
};

}  // namespace

Status run_copy_pipeline(BlockDevice& src, BlockDevice& dst, const CopyPipelineOptions& options) {
  Pipeline pipeline(src, dst, options);
  return pipeline.run();
}

}  // namespace qcowkit::cli
