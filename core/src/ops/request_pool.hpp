// RequestPool: runs block-operation requests with a bounded number in flight.
//
// With QCOWKIT_HAVE_THREADS and more than one slot, tasks run on worker
// threads started on demand (never more than the parallelism asked for);
// otherwise, as in the WebAssembly build, each task runs inline in submit().
// Every task gets a slot number in [0, slots()) that no other running task
// holds, so an operation can give each slot its own buffer: memory stays
// bounded by slots() x buffer size whatever the device size.
#pragma once

#include <functional>
#include <memory>

#include "qcowkit/result.hpp"

namespace qcowkit::ops {

class RequestPool {
 public:
  using Task = std::function<Status(unsigned slot)>;

  explicit RequestPool(unsigned parallelism);
  ~RequestPool();  // waits for running tasks
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;

  unsigned slots() const { return slots_; }

  // Queues `task` (blocking while `slots()` tasks are already waiting).
  // Returns false, without running it, once any task has failed: the caller
  // should stop producing work and call finish().
  bool submit(Task task);

  // Waits for every submitted task; returns the first error, if any.
  Status finish();

 private:
  struct Shared;
  unsigned slots_;
  std::unique_ptr<Shared> shared_;
};

}  // namespace qcowkit::ops
