// A small fork-join thread pool. Each Node environment owns one (see addon.cc); the
// binding entry points make it current for the calling thread, so kernels only call
// parallel_for and never see the pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace deepnode {

class ThreadPool {
 public:
  // Throws std::system_error when the system cannot start the threads (none is left running).
  explicit ThreadPool(int numThreads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void setFlushDenormal(bool on);
  bool flushDenormal() const { return flushDenormal_; }

  // Calls fn(task) for task in [0, numTasks); the calling thread takes part. Blocks
  // until all tasks have run, then rethrows the first exception a task threw. Not
  // re-entrant: a task must not call run() again.
  void run(int64_t numTasks, const std::function<void(int64_t)>& fn);

 private:
  void stop();  // ends and joins every worker
  void workerLoop(int index);
  void runTask(const std::function<void(int64_t)>& fn, int64_t task);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t)>* job_ = nullptr;
  // Written under mutex_; the atomics are also read without it by the brief spin before a
  // thread sleeps (see spinUntil in threadpool.cc).
  int64_t numTasks_ = 0;
  int64_t nextTask_ = 0;
  std::atomic<int64_t> finished_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  bool flushDenormal_ = true;
  std::exception_ptr error_;
};

// The pool of the environment that is calling into the addon on this thread.
ThreadPool* currentPool();
void setCurrentPool(ThreadPool* pool);

// Splits [0, n) into contiguous ranges of at least `grain` items and calls
// fn(begin, end) for each, in parallel on the current pool. Runs inline when the work
// is small, when there is no pool, or when called from inside a parallel region.
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Number of threads parallelFor may use right now.
int maxThreads();

// RAII guard that turns on flush-to-zero and denormals-are-zero on this thread (when
// the pool asks for it) and restores the previous mode on exit.
class DenormalGuard {
 public:
  explicit DenormalGuard(bool on);
  ~DenormalGuard();

 private:
  unsigned saved_ = 0;
  bool active_ = false;
};

}  // namespace deepnode
