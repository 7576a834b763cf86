#include "cache/parallel_runner.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>

#if QCOWKIT_HAVE_THREADS
#include <thread>
#include <vector>
#endif

namespace qcowkit::cache {

#if QCOWKIT_HAVE_THREADS

namespace {

struct Batch {
  size_t count = 0;
  const std::function<void(size_t)>* job = nullptr;
  size_t next = 0;       // guarded by Pool::mutex
  size_t finished = 0;   // guarded by Pool::mutex
};

}  // namespace

// Workers are started lazily, on the first batch that can use them, so a
// cache that never writes back costs no threads (and nbdkit's fork happens
// before any exist).
struct ParallelRunner::Pool {
  std::mutex mutex;
  std::condition_variable work_ready;
  std::condition_variable batch_done;
  std::deque<Batch*> queue;  // batches with jobs not yet started
  std::vector<std::thread> workers;
  bool stopping = false;

  // Takes the next job index from the front batch; false when none.
  bool take(std::unique_lock<std::mutex>&, Batch*& batch, size_t& index) {
    while (!queue.empty()) {
      Batch* front = queue.front();
      if (front->next < front->count) {
        batch = front;
        index = front->next++;
        if (front->next == front->count) queue.pop_front();
        return true;
      }
      queue.pop_front();
    }
    return false;
  }

  void finish(Batch* batch) {
    if (++batch->finished == batch->count) batch_done.notify_all();
  }

  void work() {
    std::unique_lock lock(mutex);
    for (;;) {
      Batch* batch = nullptr;
      size_t index = 0;
      if (take(lock, batch, index)) {
        lock.unlock();
        (*batch->job)(index);
        lock.lock();
        finish(batch);
        continue;
      }
      if (stopping) return;
      work_ready.wait(lock);
    }
  }
};

ParallelRunner::ParallelRunner(unsigned threads)
    : pool_(std::make_unique<Pool>()), threads_(threads ? threads : 1) {}

ParallelRunner::~ParallelRunner() {
  {
    std::lock_guard lock(pool_->mutex);
    pool_->stopping = true;
  }
  pool_->work_ready.notify_all();
  for (auto& t : pool_->workers) t.join();
}

void ParallelRunner::run(size_t count, const std::function<void(size_t)>& job) {
  if (count == 0) return;
  if (count == 1 || threads_ == 1) {
    for (size_t i = 0; i < count; ++i) job(i);
    return;
  }
  Batch batch;
  batch.count = count;
  batch.job = &job;
  // Only as many helpers as there are jobs beyond the caller's first: waking
  // every worker for a batch of three would cost more than the jobs.
  const size_t helpers = std::min<size_t>(count, threads_) - 1;
  std::unique_lock lock(pool_->mutex);
  while (pool_->workers.size() < helpers) pool_->workers.emplace_back([p = pool_.get()] { p->work(); });
  pool_->queue.push_back(&batch);
  for (size_t i = 0; i < helpers; ++i) pool_->work_ready.notify_one();
  // The caller works on its own batch, then waits for the jobs others took.
  while (batch.next < batch.count) {
    const size_t index = batch.next++;
    if (batch.next == batch.count) {
      for (auto it = pool_->queue.begin(); it != pool_->queue.end(); ++it)
        if (*it == &batch) { pool_->queue.erase(it); break; }
    }
    lock.unlock();
    job(index);
    lock.lock();
    pool_->finish(&batch);
  }
  pool_->batch_done.wait(lock, [&] { return batch.finished == batch.count; });
}

#else  // no threads: the browser build

struct ParallelRunner::Pool {};

ParallelRunner::ParallelRunner(unsigned threads) : threads_(threads ? threads : 1) {}
ParallelRunner::~ParallelRunner() = default;

void ParallelRunner::run(size_t count, const std::function<void(size_t)>& job) {
  for (size_t i = 0; i < count; ++i) job(i);
}

#endif

}  // namespace qcowkit::cache
