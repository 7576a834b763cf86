#include "ops/request_pool.hpp"

#include <algorithm>
#include <deque>
#include <optional>

#ifdef QCOWKIT_HAVE_THREADS
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>
#endif

namespace qcowkit::ops {

#ifdef QCOWKIT_HAVE_THREADS

struct RequestPool::Shared {
  std::mutex mutex;
  std::condition_variable work_ready;   // a task was queued, or stopping
  std::condition_variable space_ready;  // the queue shrank
  std::condition_variable all_done;     // queue empty and nothing running
  std::deque<Task> queue;
  std::vector<std::thread> workers;
  unsigned idle = 0;
  unsigned running = 0;
  bool stopping = false;
  std::optional<Error> first_error;

  void record(Status status) {
    if (!status.ok() && !first_error) first_error = std::move(status).error();
  }

  void work(unsigned slot) {
    std::unique_lock lock(mutex);
    for (;;) {
      while (queue.empty() && !stopping) {
        ++idle;
        work_ready.wait(lock);
        --idle;
      }
      if (queue.empty()) return;  // stopping
      Task task = std::move(queue.front());
      queue.pop_front();
      ++running;
      space_ready.notify_one();
      const bool skip = first_error.has_value();
      lock.unlock();
      Status status = skip ? Status{} : task(slot);
      task = nullptr;  // release captures outside the lock
      lock.lock();
      record(std::move(status));
      --running;
      if (queue.empty() && running == 0) all_done.notify_all();
    }
  }
};

RequestPool::RequestPool(unsigned parallelism)
    : slots_(std::max(1u, parallelism)), shared_(std::make_unique<Shared>()) {}

RequestPool::~RequestPool() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->work_ready.notify_all();
  for (auto& worker : shared_->workers) worker.join();
}

bool RequestPool::submit(Task task) {
  Shared& s = *shared_;
  std::unique_lock lock(s.mutex);
  if (s.first_error) return false;
  // One slot: run inline, which is also what a thread-less build does.
  if (slots_ == 1 && s.workers.empty()) {
    lock.unlock();
    Status status = task(0);
    lock.lock();
    s.record(std::move(status));
    return !s.first_error;
  }
  while (s.queue.size() >= slots_ && !s.first_error) s.space_ready.wait(lock);
  if (s.first_error) return false;
  s.queue.push_back(std::move(task));
  if (s.idle == 0 && s.workers.size() < slots_) {
    const unsigned slot = static_cast<unsigned>(s.workers.size());
    try {
      s.workers.emplace_back([&s, slot] { s.work(slot); });
    } catch (const std::system_error&) {
      // No more threads to be had: the workers we have drain the queue; with
      // none at all, run the task here so that work still gets done.
      if (s.workers.empty()) {
        Task inline_task = std::move(s.queue.back());
        s.queue.pop_back();
        lock.unlock();
        Status status = inline_task(0);
        lock.lock();
        s.record(std::move(status));
        return !s.first_error;
      }
    }
  }
  s.work_ready.notify_one();
  return true;
}

Status RequestPool::finish() {
  Shared& s = *shared_;
  std::unique_lock lock(s.mutex);
  s.all_done.wait(lock, [&s] { return s.queue.empty() && s.running == 0; });
  if (s.first_error) return *s.first_error;
  return {};
}

#else  // no threads: every task runs inline, one at a time, in slot 0

struct RequestPool::Shared {
  std::optional<Error> first_error;
};

RequestPool::RequestPool(unsigned) : slots_(1), shared_(std::make_unique<Shared>()) {}

RequestPool::~RequestPool() = default;

bool RequestPool::submit(Task task) {
  if (shared_->first_error) return false;
  Status status = task(0);
  if (!status.ok()) shared_->first_error = std::move(status).error();
  return !shared_->first_error;
}

Status RequestPool::finish() {
  if (shared_->first_error) return *shared_->first_error;
  return {};
}

#endif

}  // namespace qcowkit::ops
