// Executor: the core's one pool of worker threads. Every part of the core
// that wants work done in parallel (the copy engine, and through it convert,
// compare, sha256 and the block operations) asks it, instead of starting
// threads of its own; tools/ and wasm/ start none at all.
//
// The unit of work is a batch: run(count, job) calls job(i) for every i in
// [0, count) and returns when all have finished. The calling thread takes
// indices too, so a batch always makes progress even when every pool thread
// is busy (or when a job itself runs a batch): no deadlock by nesting.
//
// Threads are started on demand, the first time a batch can use them (so a
// process that never runs a batch has none, and nbdkit can fork before any
// exist), up to kMaxThreads, and then kept for later batches.
//
// Built without QCOWKIT_HAVE_THREADS (WebAssembly), run() calls the jobs one
// after another on the calling thread; the browser drives long work
// cooperatively instead (CopyEngine::step).
//
// Thread safety: every member is safe to call from any thread at once. The
// shared executor lives until the process exits; its destructor joins the
// threads.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace qcowkit {

class Executor {
 public:
  static constexpr unsigned kMaxThreads = 64;

  // The process-wide executor.
  static Executor& shared();

  Executor();
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Calls job(i) for each i in [0, count), up to `count` at once (count - 1
  // pool threads and the caller), and returns when every call has returned.
  // `job` must not throw.
  void run(size_t count, const std::function<void(size_t)>& job);

  // Calls job() once on one of the pool's threads (not the caller's) and
  // returns when it has returned. For work that must not run on the calling
  // thread: nbdkit ties some waits of a thread to the connection that thread
  // serves, and cuts them short while that connection closes. When no pool
  // thread can be started, and without threads, the caller runs it.
  // `job` must not throw.
  void run_on_pool(const std::function<void()>& job);

  // True when run() can use threads other than the caller's.
  static bool has_threads();

 private:
  struct Pool;
  std::unique_ptr<Pool> pool_;
};

}  // namespace qcowkit
