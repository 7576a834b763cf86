// The copy engine's scheduling: one loop (work_one) that every worker runs,
// natively on the Executor's threads, cooperatively from step() in the
// browser. A worker takes the next job from the extent walk, reads it, lets
// the sink prepare it, and hands it to the commit stage, which commits it at
// once (any order) or when its turn comes (in order).
#include "qcowkit/copy_engine.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <new>
#include <optional>
#include <utility>

#include "copy/request_geometry.hpp"
#include "copy/segment_walker.hpp"
#include "qcowkit/executor.hpp"
#include "qcowkit/mutex.hpp"

namespace qcowkit {
namespace {

// One piece of the walk, as the source stage hands it out.
struct Job {
  uint64_t offset = 0, length = 0;
  bool mapped = true;
  bool deliver = true;  // false: skipped, only counted
  uint64_t sequence = 0;
  std::optional<Error> error;  // the walk itself failed here
};

// A chunk with the outcome of its read and prepare, waiting for commit.
struct Prepared {
  CopyChunk chunk;
  Status status;
};

}  // namespace

struct CopyEngine::State {
  State(BlockDevice& source, CopySink& sink, const CopyEngineOptions& options, uint64_t end)
      : source(source),
        sink(sink),
        options(options),
        end(end),
        walker(source, options.also_mapped, end, options.granule, options.operation,
               options.begin),
        whole(options.use_extents ? std::nullopt
                                  : std::optional<engine::Segment>(
                                        engine::Segment{options.begin, end - options.begin, true})),
        meter(options.progress, end - options.begin) {}

  BlockDevice& source;
  CopySink& sink;
  const CopyEngineOptions options;
  const uint64_t end;

  // The source stage: one worker at a time walks the extents.
  Mutex source_mutex;
  engine::SegmentWalker walker QK_GUARDED_BY(source_mutex);
  std::optional<engine::Segment> whole QK_GUARDED_BY(source_mutex);    // without extents: the one segment to cut
  std::optional<engine::Segment> segment QK_GUARDED_BY(source_mutex);  // rest of the current segment
  uint64_t next_sequence QK_GUARDED_BY(source_mutex) = 0;
  bool source_done QK_GUARDED_BY(source_mutex) = false;

  // The commit stage.
  mutable Mutex mutex;
  std::condition_variable room;  // the queue shrank, or the copy halted
  std::map<uint64_t, Prepared> queued QK_GUARDED_BY(mutex);  // prepared, not yet their turn
  uint64_t next_commit QK_GUARDED_BY(mutex) = 0;
  bool committing QK_GUARDED_BY(mutex) = false;  // a worker is draining `queued`
  std::optional<Error> error QK_GUARDED_BY(mutex);  // the first failure
  bool stopped QK_GUARDED_BY(mutex) = false;     // the sink asked to stop
  bool finished QK_GUARDED_BY(mutex) = false;    // sink finished, progress complete
  std::atomic<bool> halted{false};         // error, stop or cancel: take no more jobs
  std::atomic<bool> cancelled{false};

  // Spare chunk buffers, so a long copy does not allocate (and fault in)
  // a fresh megabyte per chunk.
  Mutex spare_mutex;
  std::vector<std::vector<uint8_t>> spare QK_GUARDED_BY(spare_mutex);

  engine::ProgressMeter meter;

  size_t max_queued() const {
    return options.max_queued ? options.max_queued : 2 * size_t{options.workers};
  }

  void fail(Error e) {
    MutexLock lock(mutex);
    if (!error) error = std::move(e);
    halted = true;
    room.notify_all();
  }

  std::vector<uint8_t> take_buffer(uint64_t length) {
    std::vector<uint8_t> buffer;
    {
      MutexLock lock(spare_mutex);
      if (!spare.empty()) {
        buffer = std::move(spare.back());
        spare.pop_back();
      }
    }
    // Grown only, never shrunk: bytes past `length` are not the chunk's.
    if (buffer.size() < length) buffer.resize(length);
    return buffer;
  }

  void recycle(CopyChunk& chunk) {
    if (chunk.data.empty()) return;
    MutexLock lock(spare_mutex);
    if (spare.size() < options.workers + max_queued()) spare.push_back(std::move(chunk.data));
  }

  // The next job of the walk, or nullopt at its end (caller holds source_mutex).
  Result<std::optional<Job>> next_job() QK_REQUIRES(source_mutex) {
    while (!segment || segment->length == 0) {
      if (!options.use_extents) {
        if (!whole) return std::optional<Job>();
        segment = std::exchange(whole, std::nullopt);
        continue;
      }
      QK_ASSIGN_OR_RETURN(segment, walker.next());
      if (!segment) return std::optional<Job>();
    }
    Job job;
    job.offset = segment->offset;
    job.mapped = segment->mapped;
    if (!job.mapped) {
      job.deliver = options.deliver_unmapped;
      job.length = job.deliver ? std::min(segment->length, options.max_unmapped_chunk)
                               : segment->length;
    } else {
      const uint64_t chunk = options.chunk_size;
      job.length = std::min(segment->length, chunk - job.offset % chunk);
    }
    segment->offset += job.length;
    segment->length -= job.length;
    if (job.deliver) job.sequence = next_sequence++;
    return std::optional<Job>(job);
  }

  // Takes a job under the source lock. nullopt: nothing left for this worker.
  std::optional<Job> take_job() {
    MutexLock lock(source_mutex);
    if (source_done || halted) return std::nullopt;
    auto next = next_job();
    if (next.ok() && next->has_value()) return **next;
    source_done = true;
    if (next.ok()) return std::nullopt;
    // A failed walk is reported in its place in the order, after the
    // chunks before it (compare's difference there wins over it).
    Job failure;
    failure.offset = segment ? segment->offset : options.begin;
    failure.sequence = next_sequence++;
    failure.error = std::move(next).error();
    return failure;
  }

  // One job through every stage. False when this worker should stop.
  bool work_one() {
    if (halted) return false;
    std::optional<Job> job = take_job();
    if (!job) return false;
    if (!job->deliver) {
      meter.add(job->length);
      return true;
    }
    Prepared p;
    p.chunk.offset = job->offset;
    p.chunk.length = job->length;
    p.chunk.mapped = job->mapped;
    if (job->error) {
      p.status = *job->error;
    } else {
      p.status = read_and_prepare(p.chunk);
    }
    hand_over(job->sequence, std::move(p));
    return !halted;
  }

  Status read_and_prepare(CopyChunk& chunk) {
    if (chunk.mapped) {
      try {
        chunk.data = take_buffer(chunk.length);
      } catch (const std::bad_alloc&) {
        return make_error(ENOMEM, std::string(options.operation) + ": cannot allocate a " +
                                      std::to_string(chunk.length) + "-byte buffer");
      }
      if (!options.read_source) return sink.prepare(chunk);
      Status read = source.read(chunk.offset, ByteSpan(chunk.data.data(), chunk.length));
      if (!read.ok()) return engine::failed_at(options.operation, "read", chunk.offset, read.error());
    }
    return sink.prepare(chunk);
  }

  void hand_over(uint64_t sequence, Prepared p) {
    if (!options.in_order) {
      commit(p);
      recycle(p.chunk);
      return;
    }
    MutexLock lock(mutex);
    while (!(halted || queued.size() < max_queued() || sequence == next_commit))
      room.wait(lock.native());
    if (halted) {
      lock.unlock();
      recycle(p.chunk);
      return;
    }
    queued.emplace(sequence, std::move(p));
    if (committing) return;  // the worker draining the queue will get to it
    committing = true;
    while (!halted) {
      auto it = queued.find(next_commit);
      if (it == queued.end()) break;
      Prepared next = std::move(it->second);
      queued.erase(it);
      lock.unlock();
      commit(next);
      recycle(next.chunk);
      lock.lock();
      ++next_commit;
      // One slot freed: one waiter can use it. Waking them all on every
      // commit had every reader fight this worker for the lock.
      room.notify_one();
    }
    committing = false;
    // The drain stopped at a gap: the chunk that fills it may be waiting
    // for its turn, which notify_one above need not have reached.
    room.notify_all();
  }

  void commit(Prepared& p) {
    if (!p.status.ok()) return fail(std::move(p.status).error());
    if (cancelled) return;
    auto flow = sink.commit(p.chunk);
    if (!flow.ok()) return fail(std::move(flow).error());
    meter.add(p.chunk.length);
    if (*flow == CopySink::Flow::stop) {
      MutexLock lock(mutex);
      stopped = true;
      halted = true;
      room.notify_all();
    }
  }

  // After the last job: the outcome, finishing the sink on success.
  Status conclude() {
    MutexLock lock(mutex);
    if (error) return *error;
    if (cancelled) return make_error(ECANCELED, std::string(options.operation) + ": cancelled");
    if (finished) return {};
    if (!stopped && !queued.empty())
      return make_error(EIO, std::string(options.operation) + ": chunks left uncommitted");
    const bool run_finish = !stopped;
    lock.unlock();
    if (run_finish) {
      Status st = sink.finish();
      if (!st.ok()) {
        fail(st.error());
        return st;
      }
    }
    meter.finish();
    lock.lock();
    finished = true;
    return {};
  }
};

Result<std::unique_ptr<CopyEngine>> CopyEngine::create(BlockDevice& source, CopySink& sink,
                                                       CopyEngineOptions options) {
  const char* op = options.operation ? options.operation : "copy";
  options.operation = op;
  if (options.alignment == 0) options.alignment = 1;
  if (options.granule == 0) options.granule = options.alignment;
  if (options.chunk_size == 0 || options.chunk_size % options.alignment != 0 ||
      options.granule % options.alignment != 0)
    return make_error(EINVAL, std::string(op) + ": chunk size " +
                                  std::to_string(options.chunk_size) + " and granule " +
                                  std::to_string(options.granule) +
                                  " must be non-zero multiples of the alignment " +
                                  std::to_string(options.alignment));
  options.max_unmapped_chunk =
      std::max(options.alignment, engine::align_down(options.max_unmapped_chunk, options.alignment));
  if (options.workers == 0) options.workers = kDefaultWorkers;
  if (!Executor::has_threads()) options.workers = 1;
  const uint64_t end = std::min(options.end, source.info().size);
  if (options.begin > end || options.begin % options.alignment != 0)
    return make_error(EINVAL, std::string(op) + ": range start " + std::to_string(options.begin) +
                                  " is past the end or not aligned");
  return std::unique_ptr<CopyEngine>(
      new CopyEngine(std::make_unique<State>(source, sink, options, end)));
}

CopyEngine::CopyEngine(std::unique_ptr<State> state) : state_(std::move(state)) {}
CopyEngine::~CopyEngine() = default;

Status CopyEngine::run() {
  State& s = *state_;
  Executor::shared().run(s.options.workers, [&s](size_t) {
    while (s.work_one()) {
    }
  });
  return s.conclude();
}

Result<CopyProgress> CopyEngine::step(uint64_t budget) {
  State& s = *state_;
  const uint64_t start = s.meter.done();
  while (s.work_one() && s.meter.done() - start < budget) {
  }
  // Everything walked: one more turn finds the walk's end (or its error),
  // so the last step also finishes the sink rather than leaving it to an
  // extra call.
  if (s.meter.done() >= s.end - s.options.begin) s.work_one();
  bool done;
  {
    MutexLock lock(s.source_mutex);
    done = s.source_done || s.halted;
  }
  if (done) QK_TRY(s.conclude());
  return progress();
}

void CopyEngine::cancel() {
  State& s = *state_;
  MutexLock lock(s.mutex);
  s.cancelled = true;
  s.halted = true;
  s.room.notify_all();
}

CopyProgress CopyEngine::progress() const {
  const State& s = *state_;
  CopyProgress p;
  p.total = s.end - s.options.begin;
  p.done = s.meter.done();
  MutexLock lock(s.mutex);
  p.finished = s.finished;
  return p;
}

}  // namespace qcowkit
