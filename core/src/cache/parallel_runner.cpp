#include "cache/parallel_runner.hpp"

#include <algorithm>
#include <atomic>

#include "qcowkit/executor.hpp"

namespace qcowkit::cache {

void ParallelRunner::run(size_t count, const std::function<void(size_t)>& job) {
  const size_t lanes = std::min<size_t>(count, threads_);
  if (lanes <= 1 || !Executor::has_threads()) {
    for (size_t i = 0; i < count; ++i) job(i);
    return;
  }
  // Each lane takes the next index until none are left.
  std::atomic<size_t> next{0};
  Executor::shared().run(lanes, [&](size_t) {
    for (size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) job(i);
  });
}

}  // namespace qcowkit::cache
