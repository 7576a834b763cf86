#include "qcowkit/executor.hpp"
#include "qcowkit/mutex.hpp"

#include <algorithm>

#if QCOWKIT_HAVE_THREADS
#include <condition_variable>
#include <deque>
#include <system_error>
#include <thread>
#include <vector>
#endif

namespace qcowkit {

Executor& Executor::shared() {
  static Executor executor;
  return executor;
}

#if QCOWKIT_HAVE_THREADS

namespace {

// One run() call. Lives on the caller's stack: run() does not return before
// every index has been taken and finished, so no worker can outlive it.
struct Batch {
  size_t count = 0;
  const std::function<void(size_t)>* job = nullptr;
  size_t next = 0;      // guarded by Pool::mutex
  size_t finished = 0;  // guarded by Pool::mutex
};

}  // namespace

struct Executor::Pool {
  Mutex mutex;
  std::condition_variable work_ready;
  std::condition_variable batch_done;
  std::deque<Batch*> queue QK_GUARDED_BY(mutex);  // batches with indices not yet taken
  std::vector<std::thread> threads QK_GUARDED_BY(mutex);
  unsigned idle QK_GUARDED_BY(mutex) = 0;  // threads waiting for work
  bool stopping QK_GUARDED_BY(mutex) = false;

  // Takes the next index of the front batch; false when no batch has one.
  bool take(Batch*& batch, size_t& index) QK_REQUIRES(mutex) {
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

  void finished(Batch* batch) QK_REQUIRES(mutex) {
    if (++batch->finished == batch->count) batch_done.notify_all();
  }

  void work() {
    MutexLock lock(mutex);
    for (;;) {
      Batch* batch = nullptr;
      size_t index = 0;
      if (!take(batch, index)) {
        if (stopping) return;
        ++idle;
        work_ready.wait(lock.native());
        --idle;
        continue;
      }
      lock.unlock();
      (*batch->job)(index);
      lock.lock();
      finished(batch);
    }
  }

  // Makes sure `wanted` threads could pick up work now (caller holds mutex).
  // A system out of threads is not an error: the caller does the work.
  void grow(unsigned wanted) QK_REQUIRES(mutex) {
    unsigned available = idle;
    while (available < wanted && threads.size() < kMaxThreads) {
      try {
        threads.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        return;
      }
      ++available;
    }
  }
};

Executor::Executor() : pool_(std::make_unique<Pool>()) {}

Executor::~Executor() {
  {
    MutexLock lock(pool_->mutex);
    pool_->stopping = true;
  }
  pool_->work_ready.notify_all();
  for (auto& thread : pool_->threads) thread.join();
}

bool Executor::has_threads() { return true; }

void Executor::run(size_t count, const std::function<void(size_t)>& job) {
  if (count == 0) return;
  if (count == 1) {
    job(0);
    return;
  }
  Batch batch;
  batch.count = count;
  batch.job = &job;
  Pool& pool = *pool_;
  MutexLock lock(pool.mutex);
  pool.queue.push_back(&batch);
  pool.grow(static_cast<unsigned>(std::min<size_t>(count - 1, kMaxThreads)));
  if (count - 1 >= pool.idle) {
    pool.work_ready.notify_all();
  } else {
    for (size_t i = 0; i + 1 < count; ++i) pool.work_ready.notify_one();
  }
  // The caller works on its own batch only: taking another's would make it
  // wait for work that has nothing to do with it.
  while (batch.next < batch.count) {
    const size_t index = batch.next++;
    if (batch.next == batch.count) {
      auto it = std::find(pool.queue.begin(), pool.queue.end(), &batch);
      if (it != pool.queue.end()) pool.queue.erase(it);
    }
    lock.unlock();
    job(index);
    lock.lock();
    pool.finished(&batch);
  }
  while (batch.finished != batch.count) pool.batch_done.wait(lock.native());
}

void Executor::run_on_pool(const std::function<void()>& job) {
  const std::function<void(size_t)> once = [&job](size_t) { job(); };
  Batch batch;
  batch.count = 1;
  batch.job = &once;
  Pool& pool = *pool_;
  MutexLock lock(pool.mutex);
  pool.grow(1);
  if (pool.threads.empty()) {  // the system gave us none
    lock.unlock();
    job();
    return;
  }
  pool.queue.push_back(&batch);
  pool.work_ready.notify_all();
  while (batch.finished != batch.count) pool.batch_done.wait(lock.native());
}

#else  // no threads: the caller does everything, in order

struct Executor::Pool {};

Executor::Executor() = default;
Executor::~Executor() = default;

bool Executor::has_threads() { return false; }

void Executor::run(size_t count, const std::function<void(size_t)>& job) {
  for (size_t i = 0; i < count; ++i) job(i);
}

void Executor::run_on_pool(const std::function<void()>& job) { job(); }

#endif

}  // namespace qcowkit
