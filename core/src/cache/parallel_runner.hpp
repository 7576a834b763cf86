// ParallelRunner: runs a batch of independent jobs with at most `threads` in
// flight (the caller included) on the core's one Executor, and returns when
// all of them have finished. Write-back uses it to keep several coalesced
// device writes in flight; the cap keeps one cache from taking every thread
// the executor has. Without QCOWKIT_HAVE_THREADS the jobs run one after
// another on the calling thread.
//
// Thread safety: run() may be called from several threads at once.
#pragma once

#include <cstddef>
#include <functional>

namespace qcowkit::cache {

class ParallelRunner {
 public:
  // `threads` is the most jobs in flight at once (including the caller).
  explicit ParallelRunner(unsigned threads) : threads_(threads ? threads : 1) {}

  // Calls job(i) for every i in [0, count).
  void run(size_t count, const std::function<void(size_t)>& job);

 private:
  unsigned threads_;
};

}  // namespace qcowkit::cache
