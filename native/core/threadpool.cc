// Fork-join pool: workers take task indices from a shared counter, so uneven tasks balance
// themselves. Between jobs a worker spins for a moment before it sleeps on a condition
// variable, and so does the calling thread waiting for the last task: waking a sleeping
// thread took 20 to 60 us here, longer than many kernels (exp over 65,536 floats took 44 us
// on two threads against 25 on one).
#include "threadpool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define DEEPNODE_HAS_MXCSR 1
#endif

namespace deepnode {

namespace {
thread_local ThreadPool* tlsPool = nullptr;
thread_local bool tlsInParallel = false;

// How long a thread polls before it sleeps: a few times the cost of a wake-up, so that
// back-to-back kernels hand over without one, and short enough that an idle pool stops
// taking CPU at once. It yields while polling, so that more threads than cores still run.
constexpr auto kSpin = std::chrono::microseconds(100);

// Polls done() until it holds or kSpin has passed; the caller then waits on its condition
// variable, which returns at once if done() holds.
template <typename Done>
void spinUntil(Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (done()) return;
    if (i % 64 == 0) {
      if (std::chrono::steady_clock::now() > deadline) return;
      std::this_thread::yield();
    }
#ifdef DEEPNODE_HAS_MXCSR
    _mm_pause();
#endif
  }
}
}  // namespace

DenormalGuard::DenormalGuard(bool on) {
#ifdef DEEPNODE_HAS_MXCSR
  if (!on) return;
  saved_ = _mm_getcsr();
  _mm_setcsr(saved_ | 0x8040);  // FTZ (bit 15) and DAZ (bit 6)
  active_ = true;
#else
  (void)on;
#endif
}

DenormalGuard::~DenormalGuard() {
#ifdef DEEPNODE_HAS_MXCSR
  if (active_) _mm_setcsr(saved_);
#endif
}

ThreadPool::ThreadPool(int numThreads) {
  int extra = std::max(0, numThreads - 1);
  try {
    for (int i = 0; i < extra; ++i) workers_.emplace_back([this, i] { workerLoop(i); });
  } catch (...) {
    stop();  // the threads that did start, before the exception leaves (a joinable thread aborts)
    throw;
  }
}

ThreadPool::~ThreadPool() {
  stop();
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::setFlushDenormal(bool on) {
  flushDenormal_ = on;
}

void ThreadPool::workerLoop(int /*index*/) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t)>* job;
    {
      auto ready = [&] { return stopping_.load() || generation_.load() != seen; };
      spinUntil(ready);
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, ready);
      if (stopping_) return;
      seen = generation_;
      job = job_;
    }
    DenormalGuard guard(flushDenormal_);
    tlsInParallel = true;
    for (;;) {
      int64_t task;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        // A worker that woke late may find that run() has already returned and a newer job
        // has started; `job` would then dangle, so it takes tasks only from its own generation.
        if (generation_ != seen || nextTask_ >= numTasks_) break;
        task = nextTask_++;
      }
      runTask(*job, task);
      std::lock_guard<std::mutex> lock(mutex_);
      if (++finished_ == numTasks_) done_.notify_all();
    }
    tlsInParallel = false;
  }
}

void ThreadPool::run(int64_t numTasks, const std::function<void(int64_t)>& fn) {
  if (numTasks <= 0) return;
  if (workers_.empty() || numTasks == 1) {
    for (int64_t t = 0; t < numTasks; ++t) fn(t);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    numTasks_ = numTasks;
    nextTask_ = 0;
    finished_ = 0;
    ++generation_;
  }
  wake_.notify_all();

  tlsInParallel = true;
  for (;;) {
    int64_t task;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (nextTask_ >= numTasks_) break;
      task = nextTask_++;
    }
    runTask(fn, task);
    std::lock_guard<std::mutex> lock(mutex_);
    ++finished_;
  }
  tlsInParallel = false;

  auto finished = [&] { return finished_.load() == numTasks; };
  spinUntil(finished);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, finished);
  job_ = nullptr;
  if (error_) {
    std::exception_ptr error = error_;
    error_ = nullptr;
    std::rethrow_exception(error);
  }
}

// An exception must not leave a worker thread (that would end the process): the first
// one is kept and rethrown on the calling thread once every task has finished.
void ThreadPool::runTask(const std::function<void(int64_t)>& fn, int64_t task) {
  try {
    fn(task);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

ThreadPool* currentPool() {
  return tlsPool;
}
void setCurrentPool(ThreadPool* pool) {
  tlsPool = pool;
}

int maxThreads() {
  if (tlsInParallel || tlsPool == nullptr) return 1;
  return tlsPool->size();
}

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int threads = maxThreads();
  int64_t maxChunks = (n + grain - 1) / grain;
  int64_t chunks = std::min<int64_t>(maxChunks, threads);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  tlsPool->run(chunks, [&](int64_t c) {
    int64_t begin = c * per;
    int64_t end = std::min(n, begin + per);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace deepnode
