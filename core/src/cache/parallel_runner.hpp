// ParallelRunner: runs a batch of independent jobs on a small pool of
// persistent worker threads, the calling thread helping out, and returns when
// all of them have finished. Write-back uses it to keep several coalesced
// device writes in flight. Without QCOWKIT_HAVE_THREADS the jobs run one
// after another on the calling thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace qcowkit::cache {

class ParallelRunner {
 public:
  // `threads` is the most jobs in flight at once (including the caller).
  explicit ParallelRunner(unsigned threads);
  ~ParallelRunner();
  ParallelRunner(const ParallelRunner&) = delete;
  ParallelRunner& operator=(const ParallelRunner&) = delete;

  // Calls job(i) for every i in [0, count); several batches may run at once.
  void run(size_t count, const std::function<void(size_t)>& job);

 private:
  struct Pool;
  std::unique_ptr<Pool> pool_;
  [[maybe_unused]] unsigned threads_;  // unused without threads
};

}  // namespace qcowkit::cache
