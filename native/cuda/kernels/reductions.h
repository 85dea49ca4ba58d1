// What the reduction family's kernel files share: each file's register function (called
// from registerReductionKernels in reductions.cu), a deterministic chunked reduction, the
// checks that find the first bad element on the device (waited for, or deferred: checks.h),
// and the [outer, dim, inner] extent the cpu kernels read.
#pragma once

#include <math.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "../../core/args/reduce.h"
#include "../checks.h"
#include "../context.h"
#include "../kernels.h"
#include "../launch.h"

namespace deepnode::cuda {

void registerReduceKernels(KernelTable& table);   // reduce, arg_reduce
void registerSoftmaxKernels(KernelTable& table);  // softmax, softmax_backward, masked_softmax
void registerLossKernels(KernelTable& table);     // nll_loss, nll_loss_backward
void registerIndexKernels(KernelTable& table);    // gather, scatter_add, embedding, embedding_backward
void registerNormKernels(KernelTable& table);     // batch_norm, layer_norm and their backwards
void registerCtcKernels(KernelTable& table);      // ctc_loss, ctc_loss_backward

namespace red {

// Elements one task of a long reduction combines before its partial result is merged.
constexpr int64_t kReduceChunk = 1024;

// How the r of one output lie in memory, for segmentedReduce: Adjacent when load(o, r)
// and load(o, r + 1) read neighbouring elements (a row of a row-major matrix).
enum class Layout { Any, Adjacent };

constexpr int kWarpSize = 32;

// What one task of a warp reduction combines: r in [r0, r1) of output o.
struct WarpTask {
  int64_t o, r0, r1;
};

// Task t on one warp (taskOf(t) says what it combines): lane l combines r0 + l, r0 + l + 32,
// ... in order, so each step's 32 loads are adjacent when the r are, then the 32 results are
// merged in lane order and handed to emit(t, o, acc). The order is fixed, so the result does
// not depend on scheduling; a sum may round differently from the one-thread loop's order. The
// host emulation runs the same lanes one after another, so its results are the GPU's bit for
// bit and the task, chunk and lane arithmetic is tested.
template <typename Op, typename Load>
DEEPNODE_HD inline typename Op::Acc laneAcc(int64_t o, int64_t r0, int64_t r1, int lane, Load load) {
  typename Op::Acc acc = Op::init();
  for (int64_t r = r0 + lane; r < r1; r += kWarpSize) acc = Op::add(acc, load(o, r));
  return acc;
}

#ifdef __CUDACC__
// Lane 0 merges the lanes' results through shared memory.
template <typename Op, typename TaskOf, typename Load, typename Emit>
__global__ void warpReduceKernel(int64_t tasks, TaskOf taskOf, Load load, Emit emit) {
  using Acc = typename Op::Acc;
  __shared__ Acc lanes[kThreadsPerBlock];
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t warpsPerBlock = blockDim.x / kWarpSize, warps = warpsPerBlock * gridDim.x;
  for (int64_t t = blockIdx.x * warpsPerBlock + threadIdx.x / kWarpSize; t < tasks; t += warps) {
    const WarpTask task = taskOf(t);
    Acc acc = laneAcc<Op>(task.o, task.r0, task.r1, lane, load);
    lanes[threadIdx.x] = acc;
    __syncwarp();
    if (lane == 0) {
      for (int l = 1; l < kWarpSize; ++l) acc = Op::merge(acc, lanes[threadIdx.x + l]);
      emit(t, task.o, acc);
    }
    __syncwarp();  // the lanes' slots are rewritten by the warp's next task
  }
}

// One launch for every task in [0, tasks).
template <typename Op, typename TaskOf, typename Load, typename Emit>
void warpReduceTasks(const char* name, int64_t tasks, TaskOf taskOf, Load load, Emit emit) {
  if (tasks <= 0) return;
  constexpr int64_t warpsPerBlock = kThreadsPerBlock / kWarpSize;
  const int64_t blocks = std::min<int64_t>((tasks + warpsPerBlock - 1) / warpsPerBlock, kMaxBlocks);
  noteLaunch();
  cudaGetLastError();  // an error left by an earlier call must not be blamed on this launch
  warpReduceKernel<Op>
      <<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, static_cast<cudaStream_t>(currentStream())>>>(
          tasks, taskOf, load, emit);
  checkLaunch(name);
}
#else
template <typename Op, typename TaskOf, typename Load, typename Emit>
void warpReduceTasks(const char*, int64_t tasks, TaskOf taskOf, Load load, Emit emit) {
  if (tasks <= 0) return;
  noteLaunch();  // the launch the GPU build would make
  for (int64_t t = 0; t < tasks; ++t) {
    const WarpTask task = taskOf(t);
    typename Op::Acc acc = laneAcc<Op>(task.o, task.r0, task.r1, 0, load);
    for (int l = 1; l < kWarpSize; ++l) acc = Op::merge(acc, laneAcc<Op>(task.o, task.r0, task.r1, l, load));
    emit(t, task.o, acc);
  }
}
#endif

// warpReduceTasks where task t combines output t % outputs's chunk t / outputs of `span` r,
// of r in [0, count).
template <typename Op, typename Load, typename Emit>
void warpReduce(const char* name, int64_t tasks, int64_t outputs, int64_t count, int64_t span, Load load, Emit emit) {
  warpReduceTasks<Op>(
      name, tasks,
      [=] DEEPNODE_HD(int64_t t) {
        const int64_t r0 = t / outputs * span;
        return WarpTask{t % outputs, r0, r0 + span < count ? r0 + span : count};
      },
      load, emit);
}

// p[task] for task = c * outputs + o: the Op-combination of load(o, r) over chunk c's r.
template <typename Op, typename Load>
void chunkPartials(const char* name, int64_t outputs, int64_t count, typename Op::Acc* p, Load load) {
  using Acc = typename Op::Acc;
  const int64_t chunks = (count + kReduceChunk - 1) / kReduceChunk;
  forEach(name, outputs * chunks, [=] DEEPNODE_HD(int64_t task) {
    const int64_t o = task % outputs, r0 = task / outputs * kReduceChunk;
    const int64_t r1 = r0 + kReduceChunk < count ? r0 + kReduceChunk : count;
    Acc acc = Op::init();
    for (int64_t r = r0; r < r1; ++r) acc = Op::add(acc, load(o, r));
    p[task] = acc;
  });
}

// For every output o in [0, outputs): the Op-combination over r in [0, count) of
// load(o, r), handed to store(o, acc). A long reduction is split in fixed chunks of
// kReduceChunk combined in parallel, whose partial results are then merged in chunk
// order: no atomics, so the result does not depend on scheduling. Adjacent r (at least a
// warp's worth) are combined a warp per output or chunk (warpReduce), so that loads
// coalesce on a GPU.
template <typename Op, typename Load, typename Store>
void segmentedReduce(const char* name, int64_t outputs, int64_t count, Load load, Store store,
                     Layout layout = Layout::Any) {
  using Acc = typename Op::Acc;
  if (outputs <= 0) return;
  const bool onWarps = layout == Layout::Adjacent && count >= kWarpSize;
  if (count <= 2 * kReduceChunk) {
    if (onWarps) {
      return warpReduce<Op>(name, outputs, outputs, count, count, load,
                            [=] DEEPNODE_HD(int64_t, int64_t o, Acc acc) { store(o, acc); });
    }
    forEach(name, outputs, [=] DEEPNODE_HD(int64_t o) {
      Acc acc = Op::init();
      for (int64_t r = 0; r < count; ++r) acc = Op::add(acc, load(o, r));
      store(o, acc);
    });
    return;
  }
  const int64_t chunks = (count + kReduceChunk - 1) / kReduceChunk;
  Scratch partial(static_cast<size_t>(outputs * chunks) * sizeof(Acc));
  Acc* p = partial.as<Acc>();
  if (onWarps) {
    warpReduce<Op>(name, outputs * chunks, outputs, count, kReduceChunk, load,
                   [=] DEEPNODE_HD(int64_t task, int64_t, Acc acc) { p[task] = acc; });
  } else {
    chunkPartials<Op>(name, outputs, count, p, load);
  }
  forEach(name, outputs, [=] DEEPNODE_HD(int64_t o) {
    Acc acc = p[o];
    for (int64_t c = 1; c < chunks; ++c) acc = Op::merge(acc, p[c * outputs + o]);
    store(o, acc);
  });
}

// A sum in double (args/reduce.h), and two sums side by side, for segmentedReduce.
using args::SumDouble;

struct TwoSums {
  double a, b;
};

struct SumTwo {
  using Acc = TwoSums;
  static DEEPNODE_HD Acc init() { return TwoSums{0, 0}; }
  static DEEPNODE_HD Acc add(Acc acc, TwoSums x) { return TwoSums{acc.a + x.a, acc.b + x.b}; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return add(a, b); }
};

// The first bad position, as the largest ~k (0 when none), for segmentedReduce.
struct FirstBad {
  using Acc = unsigned long long;
  static DEEPNODE_HD Acc init() { return 0; }
  static DEEPNODE_HD Acc add(Acc acc, Acc x) { return x > acc ? x : acc; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return add(a, b); }
};

// Has the device find the first k in [0, n) for which bad(k) holds and, if there is one,
// write k + 1 and value(k) to *slot (checks.h); a passing check writes nothing. One thread
// writes the slot, after the reduction, so the write needs no atomics.
template <typename Bad, typename Value>
void recordFirstBad(const char* name, int64_t n, Bad bad, Value value, DeviceFailure* slot) {
  segmentedReduce<FirstBad>(
      name, 1, n, [=] DEEPNODE_HD(int64_t, int64_t k) { return bad(k) ? ~static_cast<unsigned long long>(k) : 0ull; },
      [=] DEEPNODE_HD(int64_t, unsigned long long first) {
        if (first == 0) return;
        const int64_t k = static_cast<int64_t>(~first);
        slot->value = value(k);
        slot->found = static_cast<unsigned long long>(k) + 1;
      },
      Layout::Adjacent);
}

// The first k in [0, n) for which bad(k) holds (bad runs on the device), or -1, and in
// *found the value(k) there; the host waits for the answer.
template <typename Bad, typename Value>
int64_t firstBad(const char* name, int64_t n, Bad bad, Value value, int64_t* found) {
  if (n <= 0) return -1;
  Scratch scratch(sizeof(DeviceFailure));
  DeviceFailure* slot = scratch.as<DeviceFailure>();
  fillZeroAsync(slot, sizeof(DeviceFailure));
  recordFirstBad(name, n, bad, value, slot);
  DeviceFailure host{};
  copyToHostNow(&host, slot, sizeof host);
  if (host.found == 0) return -1;
  *found = host.value;
  return static_cast<int64_t>(host.found - 1);
}

template <typename Bad>
int64_t firstBad(const char* name, int64_t n, Bad bad) {
  int64_t unused = 0;
  return firstBad(
      name, n, bad, [] DEEPNODE_HD(int64_t) { return 0ll; }, &unused);
}

// A failure of `call`'s op that can be thrown after the call is over, by fail(op, value)
// where op is a call that carries only the op's name.
template <typename Fail>
CheckFailure failureOf(const KernelCall& call, Fail fail) {
  return [op = call.op, fail](int64_t value) {
    KernelCall named;
    named.op = op;
    fail(named, value);
  };
}

// Fails, through fail(value(k)), on the first k in [0, n) for which bad(k) holds: at once,
// before the op writes anything, with sync checks on; otherwise at the next wait for the
// device (checks.h), and the op goes on with its kernels, which must skip bad elements.
template <typename Bad, typename Value>
void checkEach(const char* name, int64_t n, Bad bad, Value value, CheckFailure fail) {
  if (n <= 0) return;
  if (syncChecks()) {
    int64_t found = 0;
    if (firstBad(name, n, bad, value, &found) >= 0) fail(found);
    return;
  }
  struct Queued {  // counted as queued even when queuing its kernel failed
    ~Queued() { checkQueued(); }
  };
  DeviceFailure* slot = deferCheck(std::move(fail));
  Queued queued;
  recordFirstBad(name, n, bad, value, slot);
}

// One value of device memory, read back (waits for the stream).
template <typename T>
T readBack(const T* data) {
  T value{};
  copyToHostNow(&value, data, sizeof(T));
  return value;
}

// The [outer, dim, inner] view of softmax and arg_reduce, read as the cpu kernels read it.
using args::Extent;
using args::readExtent;

}  // namespace red
}  // namespace deepnode::cuda
