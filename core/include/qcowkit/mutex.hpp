// The core's locks: std::mutex and std::shared_mutex with clang's
// thread-safety annotations (see thread_annotations.hpp), and the scoped
// holders that take them. libstdc++'s own types carry no annotations, so
// every lock in the core is one of these.
//
//   class Table {
//     qcowkit::Mutex mutex_;
//     std::vector<int> rows_ QK_GUARDED_BY(mutex_);
//     void add(int row) { qcowkit::MutexLock lock(mutex_); rows_.push_back(row); }
//   };
//
// Condition variables wait on MutexLock::native(); wait in a loop that tests
// the condition in the locked function (not in a predicate lambda, which the
// analysis cannot see holds the lock).
#pragma once

#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "qcowkit/thread_annotations.hpp"

namespace qcowkit {

class QK_CAPABILITY("mutex") Mutex {
 public:
  void lock() QK_ACQUIRE() { mutex_.lock(); }
  void unlock() QK_RELEASE() { mutex_.unlock(); }
  bool try_lock() QK_TRY_ACQUIRE(true) { return mutex_.try_lock(); }
  std::mutex& native() { return mutex_; }

 private:
  std::mutex mutex_;
};

// Holds a Mutex for its scope; may be released and taken again inside it
// (to do I/O without the lock), and waited on through native().
class QK_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) QK_ACQUIRE(mutex) : lock_(mutex.native()) {}
  ~MutexLock() QK_RELEASE() {}
  void lock() QK_ACQUIRE() { lock_.lock(); }
  void unlock() QK_RELEASE() { lock_.unlock(); }
  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

class QK_CAPABILITY("shared_mutex") SharedMutex {
 public:
  void lock() QK_ACQUIRE() { mutex_.lock(); }
  void unlock() QK_RELEASE() { mutex_.unlock(); }
  void lock_shared() QK_ACQUIRE_SHARED() { mutex_.lock_shared(); }
  void unlock_shared() QK_RELEASE_SHARED() { mutex_.unlock_shared(); }

 private:
  std::shared_mutex mutex_;
};

// Holds a SharedMutex exclusively for its scope.
class QK_SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mutex) QK_ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~WriterLock() QK_RELEASE() { mutex_.unlock(); }

 private:
  SharedMutex& mutex_;
};

// Holds a SharedMutex shared for its scope.
class QK_SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mutex) QK_ACQUIRE_SHARED(mutex) : mutex_(mutex) {
    mutex_.lock_shared();
  }
  ~ReaderLock() QK_RELEASE() { mutex_.unlock_shared(); }

 private:
  SharedMutex& mutex_;
};

}  // namespace qcowkit
