// Reductions (sum, mean, max, min, prod over any set of axes), argmax/argmin, the norms of
// many tensors at once, and softmax / log-softmax forward and backward. Float sums
// accumulate in double across 64 independent lanes: accurate for millions of values, and the
// lanes vectorise without -ffast-math. Every reduction first merges adjacent dims that are
// both kept or both reduced, so most calls become "reduce a contiguous inner block" or "add
// rows".
#include "../core/args/reduce.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/args/foreach.h"
#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"
#include "vec_math.h"

namespace deepnode::cpu {

namespace {

using args::Extent;
using args::ReduceOp;

constexpr int64_t kGrain = 32 * 1024;  // elements of work per task
constexpr int64_t kChunk = 64 * 1024;  // a long contiguous reduction is split in chunks this size
constexpr int64_t kColumns = 512;      // columns accumulated together when the inner dim is kept
constexpr int kLanes = 64;             // independent accumulators of a contiguous reduction

// ---------------------------------------------------------------------------------------
// Reduction ops: an accumulator type, its identity, one step, a merge and the final value.

template <typename T, typename A>
struct SumOp {
  using Acc = A;
  static Acc init() { return 0; }
  static Acc add(Acc acc, T x) { return acc + static_cast<Acc>(x); }
  static Acc merge(Acc a, Acc b) { return a + b; }
  template <typename O>
  static O finish(Acc acc, int64_t) {
    if constexpr (std::is_integral_v<O>)
      return static_cast<O>(static_cast<uint32_t>(static_cast<uint64_t>(acc)));
    else
      return static_cast<O>(acc);
  }
};

template <typename T>
struct MeanOp : SumOp<T, double> {
  template <typename O>
  static O finish(double acc, int64_t count) {
    return static_cast<O>(acc / static_cast<double>(count));
  }
};

// Products accumulate in double for floats and wrap modulo 2^64 for integers.
template <typename T, typename A>
struct ProdOp {
  using Acc = A;
  static Acc init() { return 1; }
  static Acc add(Acc acc, T x) { return acc * static_cast<Acc>(static_cast<std::make_signed_t<Acc>>(x)); }
  static Acc merge(Acc a, Acc b) { return a * b; }
  template <typename O>
  static O finish(Acc acc, int64_t) {
    return static_cast<O>(acc);
  }
};
template <typename T>
struct ProdOp<T, double> {
  using Acc = double;
  static Acc init() { return 1; }
  static Acc add(Acc acc, T x) { return acc * static_cast<double>(x); }
  static Acc merge(Acc a, Acc b) { return a * b; }
  template <typename O>
  static O finish(Acc acc, int64_t) {
    return static_cast<O>(acc);
  }
};

// max and min propagate NaN: once an accumulator holds NaN it keeps it.
template <typename T>
struct MaxOp {
  using Acc = T;
  static Acc init() {
    if constexpr (std::is_floating_point_v<T>)
      return -std::numeric_limits<T>::infinity();
    else
      return std::numeric_limits<T>::lowest();
  }
  // | rather than ||: branch-free, so the lanes vectorise.
  static Acc add(Acc acc, T x) { return ((x > acc) | (x != x)) ? x : acc; }
  static Acc merge(Acc a, Acc b) { return add(a, b); }
  template <typename O>
  static O finish(Acc acc, int64_t) {
    return acc;
  }
};
template <typename T>
struct MinOp {
  using Acc = T;
  static Acc init() {
    if constexpr (std::is_floating_point_v<T>)
      return std::numeric_limits<T>::infinity();
    else
      return std::numeric_limits<T>::max();
  }
  static Acc add(Acc acc, T x) { return ((x < acc) | (x != x)) ? x : acc; }
  static Acc merge(Acc a, Acc b) { return add(a, b); }
  template <typename O>
  static O finish(Acc acc, int64_t) {
    return acc;
  }
};

// acc[c] = add(acc[c], x[c]) for c in [0, n): the loop shape GCC vectorises for every op,
// including the NaN-propagating selects of max and min. `op` carries what a step needs
// beyond the values (a norm's order); most ops need nothing.
template <typename Op, typename T>
inline __attribute__((always_inline)) void addColumns(typename Op::Acc* __restrict acc, const T* __restrict x,
                                                      int64_t n, const Op& op = Op{}) {
  for (int64_t c = 0; c < n; ++c) acc[c] = op.add(acc[c], x[c]);
}

// Reduces x[0, n) as rows of kLanes columns into kLanes accumulators, merged at the end.
template <typename Op, typename T>
DEEPNODE_CLONES typename Op::Acc reduceContiguous(const T* __restrict x, int64_t n, const Op& op = Op{}) {
  using Acc = typename Op::Acc;
  Acc lanes[kLanes];
  for (int j = 0; j < kLanes; ++j) lanes[j] = Op::init();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) addColumns<Op>(lanes, x + i, kLanes, op);
  Acc acc = Op::init();
  for (int j = 0; j < kLanes; ++j) acc = Op::merge(acc, lanes[j]);
  for (; i < n; ++i) acc = op.add(acc, x[i]);
  return acc;
}

// acc[c] = add(acc[c], x[c]) for a row of columns.
template <typename Op, typename T>
DEEPNODE_CLONES void accumulateRow(typename Op::Acc* __restrict acc, const T* __restrict x, int64_t n) {
  addColumns<Op>(acc, x, n);
}

// ---------------------------------------------------------------------------------------
// Planning: groups of adjacent dims that are all kept or all reduced, size-1 dims dropped.

struct ReducePlan {
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // element strides of each group in x
  std::vector<bool> reduced;
  int64_t outputs = 1;  // product of kept groups
  int64_t count = 1;    // elements reduced into each output
};

ReducePlan planReduce(const Shape& shape, const std::vector<bool>& reducedAxis) {
  ReducePlan plan;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!plan.sizes.empty() && plan.reduced.back() == reducedAxis[d]) {
      plan.sizes.back() *= shape[d];
    } else {
      plan.sizes.push_back(shape[d]);
      plan.reduced.push_back(reducedAxis[d]);
    }
    (reducedAxis[d] ? plan.count : plan.outputs) *= shape[d];
  }
  plan.strides.assign(plan.sizes.size(), 1);
  for (int d = static_cast<int>(plan.sizes.size()) - 2; d >= 0; --d)
    plan.strides[d] = plan.strides[d + 1] * plan.sizes[d + 1];
  return plan;
}

// Offset in x of the first element of output `o`, and the list of reduced groups.
int64_t outputBase(const ReducePlan& plan, int64_t o, int skipLast) {
  int64_t base = 0;
  for (int d = static_cast<int>(plan.sizes.size()) - 1 - skipLast; d >= 0; --d) {
    if (plan.reduced[d]) continue;
    base += (o % plan.sizes[d]) * plan.strides[d];
    o /= plan.sizes[d];
  }
  return base;
}

// Offset of the r-th combination of the reduced groups (other than the last `skipLast`).
int64_t reducedOffset(const ReducePlan& plan, int64_t r, int skipLast) {
  int64_t offset = 0;
  for (int d = static_cast<int>(plan.sizes.size()) - 1 - skipLast; d >= 0; --d) {
    if (!plan.reduced[d]) continue;
    offset += (r % plan.sizes[d]) * plan.strides[d];
    r /= plan.sizes[d];
  }
  return offset;
}

// The innermost group is reduced: each output combines contiguous runs of `inner`
// elements. A long run with few outputs is split in fixed chunks (independent of the
// thread count, so results do not change with it) and the partial results merged.
template <typename Op, typename T, typename O>
void reduceInner(const ReducePlan& plan, O* out, const T* x) {
  using Acc = typename Op::Acc;
  const int64_t inner = plan.sizes.back(), runs = plan.count / inner;
  const int64_t chunks = (plan.outputs < 4 && inner >= 2 * kChunk) ? (inner + kChunk - 1) / kChunk : 1;
  const int64_t chunkLen = (inner + chunks - 1) / chunks;
  std::vector<Acc> partial(plan.outputs * chunks, Op::init());
  int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, plan.count / chunks));
  parallelFor(plan.outputs * chunks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t o = task / chunks, c0 = (task % chunks) * chunkLen, c1 = std::min(inner, c0 + chunkLen);
      int64_t base = outputBase(plan, o, 1) + c0;
      Acc acc = Op::init();
      for (int64_t r = 0; r < runs; ++r)
        acc = Op::merge(acc, reduceContiguous<Op>(x + base + reducedOffset(plan, r, 1), c1 - c0));
      partial[task] = acc;
    }
  });
  for (int64_t o = 0; o < plan.outputs; ++o) {
    Acc acc = partial[o * chunks];
    for (int64_t c = 1; c < chunks; ++c) acc = Op::merge(acc, partial[o * chunks + c]);
    out[o] = Op::template finish<O>(acc, plan.count);
  }
}

// Adds rows [r0, r1) of the reduced combinations into acc[0, n). With one reduced
// group (the usual [R, C] case) the rows are equally spaced and need no index arithmetic.
template <typename Op, typename T>
void accumulateRows(const ReducePlan& plan, typename Op::Acc* acc, const T* x, int64_t r0, int64_t r1, int64_t n) {
  int reducedGroups = 0, group = 0;
  for (size_t d = 0; d < plan.sizes.size(); ++d) {
    if (plan.reduced[d]) ++reducedGroups, group = static_cast<int>(d);
  }
  const int64_t stride = plan.strides[group];
  for (int64_t r = r0; r < r1; ++r) {
    const T* row = x + (reducedGroups == 1 ? r * stride : reducedOffset(plan, r, 1));
    if (n < 16) {
      for (int64_t c = 0; c < n; ++c) acc[c] = Op::add(acc[c], row[c]);
    } else {
      accumulateRow<Op>(acc, row, n);
    }
  }
}

// The innermost group is kept: each block of outputs sums whole rows of up to kColumns
// columns, which vectorises across columns (bias gradients: sum over dim 0 of [N, C]).
// With few blocks and many rows (sum over dim 0 of [1M, 16]) the rows are split in fixed
// chunks, independent of the thread count, whose partial sums are merged in order.
template <typename Op, typename T, typename O>
void reduceOuter(const ReducePlan& plan, O* out, const T* x) {
  using Acc = typename Op::Acc;
  const int64_t cols = plan.sizes.back(), rows = plan.outputs / cols;
  const int64_t colBlocks = (cols + kColumns - 1) / kColumns, width = std::min(cols, kColumns);
  const int64_t chunkRows = std::max<int64_t>(1, kChunk / width);
  const int64_t chunks =
      rows * colBlocks < 4 && plan.count >= 2 * chunkRows ? (plan.count + chunkRows - 1) / chunkRows : 1;
  const int64_t perChunk = (plan.count + chunks - 1) / chunks;
  std::vector<Acc> partial(rows * colBlocks * chunks * width);
  int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, perChunk * width));
  parallelFor(rows * colBlocks * chunks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t block = task / chunks, chunk = task % chunks;
      int64_t row = block / colBlocks, c0 = (block % colBlocks) * kColumns, n = std::min(cols - c0, kColumns);
      Acc* acc = partial.data() + task * width;
      std::fill(acc, acc + n, Op::init());
      int64_t r0 = chunk * perChunk, r1 = std::min(plan.count, r0 + perChunk);
      accumulateRows<Op>(plan, acc, x + outputBase(plan, row, 1) + c0, r0, r1, n);
    }
  });
  for (int64_t block = 0; block < rows * colBlocks; ++block) {
    int64_t row = block / colBlocks, c0 = (block % colBlocks) * kColumns, n = std::min(cols - c0, kColumns);
    Acc* acc = partial.data() + block * chunks * width;
    for (int64_t chunk = 1; chunk < chunks; ++chunk) {
      for (int64_t c = 0; c < n; ++c) acc[c] = Op::merge(acc[c], acc[chunk * width + c]);
    }
    O* o = out + row * cols + c0;
    for (int64_t c = 0; c < n; ++c) o[c] = Op::template finish<O>(acc[c], plan.count);
  }
}

template <typename Op, typename T, typename O>
void reduceWith(const ReducePlan& plan, O* out, const T* x) {
  if (plan.outputs == 0) return;
  if (plan.count == 0) {
    std::fill(out, out + plan.outputs, Op::template finish<O>(Op::init(), 0));
    return;
  }
  if (plan.sizes.empty()) {  // every dim has size 1
    out[0] = Op::template finish<O>(Op::add(Op::init(), x[0]), 1);
    return;
  }
  if (!plan.reduced.back()) return reduceOuter<Op>(plan, out, x);
  reduceInner<Op>(plan, out, x);
}

// ---------------------------------------------------------------------------------------
// argmax / argmin: NaN wins as the maximum and the minimum, as in PyTorch; ties keep the first.

template <typename T, bool kMax>
bool beats(T x, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (x != x) return best == best;
  }
  return kMax ? x > best : x < best;
}

template <typename T, bool kMax>
void argReduceTyped(const Extent& e, int32_t* out, const T* x) {
  int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, e.dim));
  parallelFor(e.outer * e.inner, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t o = task / e.inner, i = task % e.inner;
      const T* row = x + o * e.dim * e.inner + i;
      T best = row[0];
      int64_t bestIndex = 0;
      for (int64_t d = 1; d < e.dim; ++d) {
        if (beats<T, kMax>(row[d * e.inner], best)) {
          best = row[d * e.inner];
          bestIndex = d;
        }
      }
      out[task] = static_cast<int32_t>(bestIndex);
    }
  });
}

// ---------------------------------------------------------------------------------------
// norms: the p-norm of each of many tensors in one call (args/foreach.h). Each tensor is cut
// in chunks of kChunk elements, the chunks of all tensors are the tasks (the same ones
// whatever the thread count, so the same bits), and each tensor's chunks are merged in order.

// A reduce op over a norm's terms, for reduceContiguous: kLanes double lanes, which
// vectorise for p = 1, 2 and Infinity.
template <args::NormKind K, typename T>
struct NormOp {
  using Acc = double;
  using Accumulator = args::NormAccumulator<K>;
  double p;

  static Acc init() { return Accumulator::init(); }
  Acc add(Acc acc, T x) const { return Accumulator::add(acc, args::normTerm<K>(x, p)); }
  static Acc merge(Acc a, Acc b) { return Accumulator::merge(a, b); }
};

template <args::NormKind K, typename T>
void normsTyped(T* out, const std::vector<args::ForeachItem>& items, double p) {
  const NormOp<K, T> op{p};
  std::vector<int64_t> firstTask(items.size() + 1, 0);  // item k's chunks are tasks [firstTask[k], firstTask[k + 1])
  int64_t elements = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    firstTask[k + 1] = firstTask[k] + (items[k].size + kChunk - 1) / kChunk;
    elements += items[k].size;
  }
  const int64_t tasks = firstTask.back();
  std::vector<double> partial(static_cast<size_t>(tasks));
  const int64_t grain = elements < 2 * kGrain ? std::max<int64_t>(tasks, 1) : 1;  // small: on this thread
  parallelFor(tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const size_t k = std::upper_bound(firstTask.begin(), firstTask.end(), task) - firstTask.begin() - 1;
      const int64_t c0 = (task - firstTask[k]) * kChunk, n = std::min(kChunk, items[k].size - c0);
      partial[task] = reduceContiguous(static_cast<const T*>(items[k].data) + c0, n, op);
    }
  });
  for (size_t k = 0; k < items.size(); ++k) {
    double acc = op.init();
    for (int64_t task = firstTask[k]; task < firstTask[k + 1]; ++task) acc = op.merge(acc, partial[task]);
    out[k] = static_cast<T>(args::normFinish<K>(acc, p));
  }
}

// ---------------------------------------------------------------------------------------
// softmax over the middle dim of [outer, dim, inner]

// exp(x - m) of a row, stored in out; vectorised through vec::exp.
DEEPNODE_CLONES void expShifted(float* __restrict out, const float* __restrict x, int64_t n, float m) {
  for (int64_t d = 0; d < n; ++d) out[d] = vec::exp(x[d] - m);
}

DEEPNODE_CLONES void subtractShifted(float* __restrict out, const float* __restrict x, int64_t n, float m,
                                     float shift) {
  for (int64_t d = 0; d < n; ++d) out[d] = (x[d] - m) - shift;
}

DEEPNODE_CLONES void scale(float* __restrict out, int64_t n, float factor) {
  for (int64_t d = 0; d < n; ++d) out[d] *= factor;
}

// sum of exp(x - m) over a row, without storing the exponentials: 16 float lanes, each a
// compensated sum (Neumaier's form of Kahan's, which also holds when a term outweighs the sum
// so far, as the row's maximum, exp(0) = 1, does), merged in double. As accurate as double
// lanes, which a dominant class needs (its log-probability -log(1 + small) is small, and plain
// float lanes lost 1e-4 of it over 5,000 values), without converting the exponentials: 1.45
// cycles a value here against 1.8 for double lanes.
constexpr int kExpLanes = 16;

DEEPNODE_CLONES double sumExpShifted(const float* __restrict x, int64_t n, float m) {
  float sum[kExpLanes] = {}, carry[kExpLanes] = {};
  int64_t i = 0;
  for (; i + kExpLanes <= n; i += kExpLanes) {
    for (int j = 0; j < kExpLanes; ++j) {
      const float term = vec::exp(x[i + j] - m), next = sum[j] + term;
      const bool sumLarger = sum[j] >= term;  // both >= 0: exponentials
      carry[j] += sumLarger ? (sum[j] - next) + term : (term - next) + sum[j];
      sum[j] = next;
    }
  }
  double total = 0;
  for (int j = 0; j < kExpLanes; ++j) total += static_cast<double>(sum[j]) + carry[j];
  for (; i < n; ++i) total += vec::exp(x[i] - m);
  return total;
}

// One row (inner == 1): subtract the max so exp never overflows; a row of -inf gives
// NaN (its max is -inf), as PyTorch does. Neither form reads x after writing out, so
// out may be x itself.
void softmaxRow(float* out, const float* x, int64_t n, bool log) {
  float m = reduceContiguous<MaxOp<float>>(x, n);
  if (log) {
    // (x - m) - log(sum), not x - (m + log(sum)): rounding m + log(sum) would cost half an
    // ulp of the row's maximum, thousands of ulps of a small result.
    float logSum = static_cast<float>(std::log(sumExpShifted(x, n, m)));
    subtractShifted(out, x, n, m, logSum);
    return;
  }
  expShifted(out, x, n, m);
  scale(out, n, static_cast<float>(1.0 / reduceContiguous<SumOp<float, double>>(out, n)));
}

// A block of columns (inner > 1): the same steps, vectorised across columns.
DEEPNODE_CLONES void softmaxColumns(float* out, const float* x, const Extent& e, int64_t n, bool log) {
  float m[kColumns];
  double sum[kColumns];
  std::fill(m, m + n, -std::numeric_limits<float>::infinity());
  std::fill(sum, sum + n, 0.0);
  for (int64_t d = 0; d < e.dim; ++d) accumulateRow<MaxOp<float>>(m, x + d * e.inner, n);
  for (int64_t d = 0; d < e.dim; ++d) {
    const float* xr = x + d * e.inner;
    float* o = out + d * e.inner;
    for (int64_t c = 0; c < n; ++c) {
      float ex = vec::exp(xr[c] - m[c]);
      o[c] = ex;
      sum[c] += ex;
    }
  }
  float factor[kColumns];
  for (int64_t c = 0; c < n; ++c) factor[c] = log ? static_cast<float>(std::log(sum[c])) : 1.0 / sum[c];
  for (int64_t d = 0; d < e.dim; ++d) {
    const float* xr = x + d * e.inner;
    float* o = out + d * e.inner;
    if (log) {
      for (int64_t c = 0; c < n; ++c) o[c] = (xr[c] - m[c]) - factor[c];
    } else {
      for (int64_t c = 0; c < n; ++c) o[c] *= factor[c];
    }
  }
}

// sum(a * b) (or sum(a) when b is null) in double over kLanes lanes.
DEEPNODE_CLONES double dotContiguous(const float* __restrict a, const float* __restrict b, int64_t n) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += static_cast<double>(a[i + j]) * (b ? b[i + j] : 1.0f);
  }
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  for (; i < n; ++i) s += static_cast<double>(a[i]) * (b ? b[i] : 1.0f);
  return s;
}

// gx = y * (gy - sum(gy * y)) for softmax, gx = gy - exp(y) * sum(gy) for log-softmax.
DEEPNODE_CLONES void softmaxBackwardRow(float* __restrict gx, const float* __restrict gy, const float* __restrict y,
                                        int64_t n, bool log) {
  float s = static_cast<float>(log ? reduceContiguous<SumOp<float, double>>(gy, n) : dotContiguous(gy, y, n));
  if (log) {
    for (int64_t d = 0; d < n; ++d) gx[d] = gy[d] - vec::exp(y[d]) * s;
  } else {
    for (int64_t d = 0; d < n; ++d) gx[d] = y[d] * (gy[d] - s);
  }
}

DEEPNODE_CLONES void softmaxBackwardColumns(float* gx, const float* gy, const float* y, const Extent& e, int64_t n,
                                            bool log) {
  double s[kColumns];
  std::fill(s, s + n, 0.0);
  for (int64_t d = 0; d < e.dim; ++d) {
    const float* g = gy + d * e.inner;
    const float* yr = y + d * e.inner;
    if (log) {
      for (int64_t c = 0; c < n; ++c) s[c] += g[c];
    } else {
      for (int64_t c = 0; c < n; ++c) s[c] += static_cast<double>(g[c]) * yr[c];
    }
  }
  float sf[kColumns];
  for (int64_t c = 0; c < n; ++c) sf[c] = static_cast<float>(s[c]);
  for (int64_t d = 0; d < e.dim; ++d) {
    const float* g = gy + d * e.inner;
    const float* yr = y + d * e.inner;
    float* o = gx + d * e.inner;
    if (log) {
      for (int64_t c = 0; c < n; ++c) o[c] = g[c] - vec::exp(yr[c]) * sf[c];
    } else {
      for (int64_t c = 0; c < n; ++c) o[c] = yr[c] * (g[c] - sf[c]);
    }
  }
}

// Runs fn(offset, columns) over every (outer, block of inner columns), in parallel.
template <typename Fn>
void forEachSoftmaxBlock(const Extent& e, Fn&& fn) {
  if (e.total == 0) return;
  const int64_t blocks = (e.inner + kColumns - 1) / kColumns;
  const int64_t work = e.dim * std::min(e.inner, kColumns);
  parallelFor(e.outer * blocks, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work)), [&](int64_t b, int64_t end) {
    for (int64_t task = b; task < end; ++task) {
      int64_t o = task / blocks, c0 = (task % blocks) * kColumns;
      fn(o * e.dim * e.inner + c0, std::min(kColumns, e.inner - c0));
    }
  });
}

}  // namespace

void reduce(KernelCall& call) {
  args::ReduceArgs a = args::readReduce(call, "cpu");
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];

  ReducePlan plan = planReduce(a.shape, a.reduced);
  args::dispatchReduce<SumOp, MeanOp, MaxOp, MinOp, ProdOp>(
      a.op, x.dtype, out.data, x.data,
      [&](auto combiner, auto* o, const auto* xs) { reduceWith<decltype(combiner)>(plan, o, xs); });
}

void argReduce(KernelCall& call) {
  args::ArgReduceArgs a = args::readArgReduce(call);
  const Extent& e = a.extent;
  if (e.total == 0) return;
  int32_t* out = call.buffers[0].as<int32_t>();
  args::dispatchArgReduce(call, a.isMax, "cpu", [&](auto kMax, const auto* xs) {
    argReduceTyped<std::decay_t<decltype(*xs)>, decltype(kMax)::value>(e, out, xs);
  });
}

void norms(KernelCall& call) {
  const args::NormsArgs a = args::readNorms(call);
  args::dispatchNorm(a.order.kind, a.dtype, [&](auto kind, auto zero) {
    using T = decltype(zero);
    normsTyped<decltype(kind)::value>(static_cast<T*>(a.out), a.items, a.order.p);
  });
}

void softmax(KernelCall& call) {
  args::SoftmaxArgs a = args::readSoftmax(call, {"out", "x"});
  const Extent& e = a.extent;
  bool log = a.log;

  float* o = call.buffers[0].as<float>();
  const float* xs = call.buffers[1].as<float>();
  forEachSoftmaxBlock(e, [&](int64_t offset, int64_t columns) {
    if (e.inner == 1)
      softmaxRow(o + offset, xs + offset, e.dim, log);
    else
      softmaxColumns(o + offset, xs + offset, e, columns, log);
  });
}

void softmaxBackward(KernelCall& call) {
  args::SoftmaxArgs a = args::readSoftmax(call, {"gradX", "gradOut", "y"});
  const Extent& e = a.extent;
  bool log = a.log;

  float* gx = call.buffers[0].as<float>();
  const float* gy = call.buffers[1].as<float>();
  const float* ys = call.buffers[2].as<float>();
  forEachSoftmaxBlock(e, [&](int64_t offset, int64_t columns) {
    if (e.inner == 1)
      softmaxBackwardRow(gx + offset, gy + offset, ys + offset, e.dim, log);
    else
      softmaxBackwardColumns(gx + offset, gy + offset, ys + offset, e, columns, log);
  });
}

}  // namespace deepnode::cpu
