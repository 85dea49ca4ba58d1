// Reductions (sum, mean, max, min, prod over any set of axes), argmax/argmin and the norms
// of many tensors (norms) on CUDA, with the cpu kernels' buffers, attributes, checks and
// accumulators: double for float sums and products, int64 for integer sums (wrapped to
// int32), uint64 for integer products; max and min propagate NaN; argmax and argmin keep the
// first best. Adjacent dims both kept or both reduced are merged first; each output's
// elements are combined by red::segmentedReduce (fixed chunks, merged in order), so a sum of
// millions of values into one is parallel and deterministic. norms cuts its tensors into the
// same chunks, for many tensors in one launch.
#include <math.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../../core/args/foreach.h"
#include "item_chunks.h"
#include "reductions.h"

namespace deepnode::cuda {
namespace red_reduce {

using namespace red;
using args::ReduceOp;

constexpr int kMaxGroups = 32;

// Groups of adjacent dims all kept or all reduced (size-1 dims dropped), captured by value.
struct ReducePlan {
  int groups = 0;
  int64_t sizes[kMaxGroups] = {};
  int64_t strides[kMaxGroups] = {};  // element strides of each group in x
  bool reduced[kMaxGroups] = {};
  int64_t outputs = 1;  // product of kept groups
  int64_t count = 1;    // elements reduced into each output

  // Offset in x of the r-th reduced element of output o. Two groups or fewer need no
  // index arithmetic: x is [outputs, count] or [count, outputs].
  DEEPNODE_HD int64_t offset(int64_t o, int64_t r) const {
    if (groups <= 1 || (groups == 2 && reduced[1])) return o * count + r;
    if (groups == 2) return r * outputs + o;
    // Two branches rather than a reference to r or o, which would put both in local
    // memory on the GPU (ptxas gave every reduce kernel a stack frame for it).
    int64_t off = 0;
    for (int d = groups - 1; d >= 0; --d) {
      if (reduced[d]) {
        off += (r % sizes[d]) * strides[d];
        r /= sizes[d];
      } else {
        off += (o % sizes[d]) * strides[d];
        o /= sizes[d];
      }
    }
    return off;
  }
};

template <typename T>
DEEPNODE_HD T lowestOf() {
  if constexpr (std::is_same_v<T, float>)
    return -INFINITY;
  else if constexpr (std::is_same_v<T, int32_t>)
    return INT32_MIN;
  else
    return 0;
}

template <typename T>
DEEPNODE_HD T highestOf() {
  if constexpr (std::is_same_v<T, float>)
    return INFINITY;
  else if constexpr (std::is_same_v<T, int32_t>)
    return INT32_MAX;
  else
    return 255;
}

template <typename T, typename A>
struct SumOp {
  using Acc = A;
  static DEEPNODE_HD Acc init() { return 0; }
  static DEEPNODE_HD Acc add(Acc acc, T x) { return acc + static_cast<Acc>(x); }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return a + b; }
  template <typename O>
  static DEEPNODE_HD O finish(Acc acc, int64_t) {
    if constexpr (std::is_integral_v<O>)
      return static_cast<O>(static_cast<uint32_t>(static_cast<uint64_t>(acc)));
    else
      return static_cast<O>(acc);
  }
};

template <typename T>
struct MeanOp : SumOp<T, double> {
  template <typename O>
  static DEEPNODE_HD O finish(double acc, int64_t count) {
    return static_cast<O>(acc / static_cast<double>(count));
  }
};

// Products accumulate in double for floats and wrap modulo 2^64 for integers.
template <typename T, typename A>
struct ProdOp {
  using Acc = A;
  static DEEPNODE_HD Acc init() { return 1; }
  static DEEPNODE_HD Acc add(Acc acc, T x) {
    if constexpr (std::is_integral_v<Acc>)
      return acc * static_cast<Acc>(static_cast<std::make_signed_t<Acc>>(x));
    else
      return acc * static_cast<Acc>(x);
  }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return a * b; }
  template <typename O>
  static DEEPNODE_HD O finish(Acc acc, int64_t) {
    return static_cast<O>(acc);
  }
};

// max and min: once an accumulator holds NaN it keeps it.
template <typename T>
struct MaxOp {
  using Acc = T;
  static DEEPNODE_HD Acc init() { return lowestOf<T>(); }
  static DEEPNODE_HD Acc add(Acc acc, T x) { return (x > acc || x != x) ? x : acc; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return add(a, b); }
  template <typename O>
  static DEEPNODE_HD O finish(Acc acc, int64_t) {
    return acc;
  }
};

template <typename T>
struct MinOp {
  using Acc = T;
  static DEEPNODE_HD Acc init() { return highestOf<T>(); }
  static DEEPNODE_HD Acc add(Acc acc, T x) { return (x < acc || x != x) ? x : acc; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return add(a, b); }
  template <typename O>
  static DEEPNODE_HD O finish(Acc acc, int64_t) {
    return acc;
  }
};

// max and min keep the first of equal values (0 and -0), which only the one-thread loop's
// order gives; every other op may be combined in a warp's order (reductions.h).
template <typename Op>
struct KeepsFirstOfEquals : std::false_type {};
template <typename T>
struct KeepsFirstOfEquals<MaxOp<T>> : std::true_type {};
template <typename T>
struct KeepsFirstOfEquals<MinOp<T>> : std::true_type {};

template <typename Op, typename T, typename O>
void reduceWith(const ReducePlan& plan, O* out, const T* x) {
  using Acc = typename Op::Acc;
  const ReducePlan p = plan;
  const int64_t count = plan.count;
  const bool rows = plan.groups <= 1 || (plan.groups == 2 && plan.reduced[1]);  // x is [outputs, count]
  const Layout layout = rows && !KeepsFirstOfEquals<Op>::value ? Layout::Adjacent : Layout::Any;
  segmentedReduce<Op>(
      "reduce", plan.outputs, plan.count, [=] DEEPNODE_HD(int64_t o, int64_t r) { return x[p.offset(o, r)]; },
      [=] DEEPNODE_HD(int64_t o, Acc acc) { out[o] = Op::template finish<O>(acc, count); }, layout);
}

ReducePlan planReduce(const KernelCall& call, const Shape& shape, const std::vector<bool>& reducedAxis) {
  ReducePlan plan;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (plan.groups > 0 && plan.reduced[plan.groups - 1] == reducedAxis[d]) {
      plan.sizes[plan.groups - 1] *= shape[d];
    } else {
      if (plan.groups == kMaxGroups) {
        call.fail("ERR_NOT_SUPPORTED", "reduce supports at most " + std::to_string(kMaxGroups) +
                                           " alternating kept and reduced dims, got shape " + shapeString(shape));
      }
      plan.sizes[plan.groups] = shape[d];
      plan.reduced[plan.groups++] = reducedAxis[d];
    }
    (reducedAxis[d] ? plan.count : plan.outputs) *= shape[d];
  }
  if (plan.groups > 0) plan.strides[plan.groups - 1] = 1;
  for (int d = plan.groups - 2; d >= 0; --d) plan.strides[d] = plan.strides[d + 1] * plan.sizes[d + 1];
  return plan;
}

// ---------------------------------------------------------------------------------------
// argmax / argmin: NaN wins as the maximum and the minimum, as in PyTorch; ties keep the first.

template <typename T, bool kMax>
DEEPNODE_HD bool beats(T x, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (x != x) return best == best;
  }
  return kMax ? x > best : x < best;
}

// The best value so far and its position (-1: none yet); merging keeps the earlier of
// equals by position, so a chunked or warp pass picks the first best as the loop does.
template <typename T>
struct Candidate {
  T value;
  int64_t index;
};

template <typename T, bool kMax>
struct ArgOp {
  using Acc = Candidate<T>;
  static DEEPNODE_HD Acc init() { return Acc{T(), -1}; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) {
    if (a.index < 0) return b;
    if (b.index < 0) return a;
    if (beats<T, kMax>(b.value, a.value)) return b;
    if (beats<T, kMax>(a.value, b.value)) return a;
    return b.index < a.index ? b : a;  // equal, or both NaN: the first, in whatever order merged
  }
  static DEEPNODE_HD Acc add(Acc acc, Acc x) { return merge(acc, x); }
};

template <typename T, bool kMax>
void argReduceTyped(const Extent& e, int32_t* out, const T* x) {
  const int64_t dim = e.dim, inner = e.inner;
  segmentedReduce<ArgOp<T, kMax>>(
      "arg_reduce", e.outer * e.inner, e.dim,
      [=] DEEPNODE_HD(int64_t o, int64_t d) {
        return Candidate<T>{x[o / inner * dim * inner + o % inner + d * inner], d};
      },
      [=] DEEPNODE_HD(int64_t o, Candidate<T> best) { out[o] = static_cast<int32_t>(best.index); },
      inner == 1 ? Layout::Adjacent : Layout::Any);
}

// ---------------------------------------------------------------------------------------
// norms (args/foreach.h), PyTorch's foreach norm in two launches per kItemsPerLaunch tensors,
// whatever their sizes: every tensor is cut into chunks of kReduceChunk elements, one task each
// (an empty tensor has one task of no elements, so its norm is 0); one warp launch combines the
// terms of every task of the chunk's tensors into its partial, in double, and one launch
// merges each tensor's partials in chunk order into its norm. When every tensor of the chunk
// is one task, the warp launch writes the norms itself (a merge of one partial is that
// partial). No atomics: the result does not depend on scheduling, nor on which tensors share
// a launch.

template <typename T>
struct NormItem {
  const T* x;  // [size]
  int64_t size;
  T* out;  // [1]: the norm of x
};

// Three copies of a chunk (for the tasks, the loads and the results) and a few scalars go into
// a warp launch's parameters.
static_assert(3 * sizeof(ItemChunk<NormItem<double>>) + 256 < 4096, "a warp launch's parameters must fit in 4 KiB");

int64_t normTasks(int64_t size) {
  return size == 0 ? 1 : (size + kReduceChunk - 1) / kReduceChunk;
}

// The chunk's norms; partials holds a double for each of its tasks.
template <args::NormKind K, typename T>
void normChunk(const ItemChunk<NormItem<T>>& chunk, double* partials, double p) {
  using Acc = args::NormAccumulator<K>;
  const bool oneTaskEach = chunk.end[chunk.count - 1] == chunk.count;
  warpReduceTasks<Acc>(
      "norms", chunk.end[chunk.count - 1],
      [=] DEEPNODE_HD(int64_t t) {
        const int k = itemOf(chunk, t);
        const int64_t r0 = (t - startOf(chunk, k)) * kReduceChunk, size = chunk.items[k].size;
        return WarpTask{k, r0, r0 + kReduceChunk < size ? r0 + kReduceChunk : size};
      },
      [=] DEEPNODE_HD(int64_t k, int64_t r) { return args::normTerm<K>(chunk.items[k].x[r], p); },
      [=] DEEPNODE_HD(int64_t t, int64_t k, double acc) {
        if (oneTaskEach)
          *chunk.items[k].out = static_cast<T>(args::normFinish<K>(acc, p));
        else
          partials[t] = acc;
      });
  if (oneTaskEach) return;
  forEach("norms", chunk.count, [=] DEEPNODE_HD(int64_t k) {
    const int64_t first = startOf(chunk, static_cast<int>(k));
    double acc = partials[first];
    for (int64_t t = first + 1; t < chunk.end[k]; ++t) acc = Acc::merge(acc, partials[t]);
    *chunk.items[k].out = static_cast<T>(args::normFinish<K>(acc, p));
  });
}

template <args::NormKind K, typename T>
void normsTyped(T* out, const std::vector<args::ForeachItem>& xs, double p) {
  std::vector<NormItem<T>> items;
  int64_t tasks = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    items.push_back(NormItem<T>{static_cast<const T*>(xs[k].data), xs[k].size, out + k});
    tasks += normTasks(xs[k].size);
  }
  if (items.empty()) return;
  Scratch partials(static_cast<size_t>(tasks) * sizeof(double));
  double* next = partials.as<double>();
  forEachItemChunk(
      items, [](const NormItem<T>& item) { return normTasks(item.size); },
      [&](const ItemChunk<NormItem<T>>& chunk) {
        normChunk<K>(chunk, next, p);
        next += chunk.end[chunk.count - 1];
      });
}

void reduce(KernelCall& call) {
  args::ReduceArgs a = args::readReduce(call, "cuda");
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];

  ReducePlan plan = planReduce(call, a.shape, a.reduced);
  if (plan.outputs == 0) return;
  args::dispatchReduce<SumOp, MeanOp, MaxOp, MinOp, ProdOp>(
      a.op, x.dtype, out.data, x.data,
      [&](auto combiner, auto* o, const auto* xs) { reduceWith<decltype(combiner)>(plan, o, xs); });
}

void argReduce(KernelCall& call) {
  args::ArgReduceArgs a = args::readArgReduce(call);
  const Extent& e = a.extent;
  if (e.total == 0) return;
  int32_t* out = call.buffers[0].as<int32_t>();
  args::dispatchArgReduce(call, a.isMax, "cuda", [&](auto kMax, const auto* xs) {
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

}  // namespace red_reduce

void registerReduceKernels(KernelTable& table) {
  table["reduce"] = red_reduce::reduce;
  table["arg_reduce"] = red_reduce::argReduce;
  table["norms"] = red_reduce::norms;
}

}  // namespace deepnode::cuda
