// Reductions (sum, mean, max, min, prod over any set of axes) and argmax/argmin on CUDA,
// with the cpu kernels' buffers, attributes, checks and accumulators: double for float
// sums and products, int64 for integer sums (wrapped to int32), uint64 for integer
// products; max and min propagate NaN; argmax and argmin keep the first best. Adjacent
// dims both kept or both reduced are merged first; each output's elements are combined by
// red::segmentedReduce (fixed chunks, merged in order), so a sum of millions of values
// into one is parallel and deterministic.
#include <math.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "reductions.h"

namespace deepnode::cuda {
namespace red_reduce {

using namespace red;

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
    int64_t off = 0;
    for (int d = groups - 1; d >= 0; --d) {
      int64_t& index = reduced[d] ? r : o;
      off += (index % sizes[d]) * strides[d];
      index /= sizes[d];
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

template <typename Op, typename T, typename O>
void reduceWith(const ReducePlan& plan, O* out, const T* x) {
  using Acc = typename Op::Acc;
  const ReducePlan p = plan;
  const int64_t count = plan.count;
  segmentedReduce<Op>(
      "reduce", plan.outputs, plan.count, [=] DEEPNODE_HD(int64_t o, int64_t r) { return x[p.offset(o, r)]; },
      [=] DEEPNODE_HD(int64_t o, Acc acc) { out[o] = Op::template finish<O>(acc, count); });
}

enum class ReduceOp { Sum, Mean, Max, Min, Prod };

ReduceOp parseReduceOp(const KernelCall& call) {
  std::string name = call.string("op");
  if (name == "sum") return ReduceOp::Sum;
  if (name == "mean") return ReduceOp::Mean;
  if (name == "max") return ReduceOp::Max;
  if (name == "min") return ReduceOp::Min;
  if (name == "prod") return ReduceOp::Prod;
  call.fail("ERR_VALUE", "unknown reduce op '" + name + "'");
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

void reduceFloat(ReduceOp op, const ReducePlan& plan, float* out, const float* x) {
  switch (op) {
    case ReduceOp::Sum: return reduceWith<SumOp<float, double>>(plan, out, x);
    case ReduceOp::Mean: return reduceWith<MeanOp<float>>(plan, out, x);
    case ReduceOp::Max: return reduceWith<MaxOp<float>>(plan, out, x);
    case ReduceOp::Min: return reduceWith<MinOp<float>>(plan, out, x);
    case ReduceOp::Prod: return reduceWith<ProdOp<float, double>>(plan, out, x);
  }
}

void reduceInt(ReduceOp op, const ReducePlan& plan, int32_t* out, const int32_t* x) {
  switch (op) {
    case ReduceOp::Sum: return reduceWith<SumOp<int32_t, int64_t>>(plan, out, x);
    case ReduceOp::Max: return reduceWith<MaxOp<int32_t>>(plan, out, x);
    case ReduceOp::Min: return reduceWith<MinOp<int32_t>>(plan, out, x);
    case ReduceOp::Prod: return reduceWith<ProdOp<int32_t, uint64_t>>(plan, out, x);
    default: return;
  }
}

void reduceUInt8(ReduceOp op, const ReducePlan& plan, void* out, const uint8_t* x) {
  if (op == ReduceOp::Sum) return reduceWith<SumOp<uint8_t, int64_t>>(plan, static_cast<int32_t*>(out), x);
  if (op == ReduceOp::Max) return reduceWith<MaxOp<uint8_t>>(plan, static_cast<uint8_t*>(out), x);
  reduceWith<MinOp<uint8_t>>(plan, static_cast<uint8_t*>(out), x);
}

// Reduced axes as flags, after checking each is in range (negative counts from the end)
// and appears once.
std::vector<bool> reducedAxes(const KernelCall& call, const Shape& shape, const std::vector<int64_t>& axes) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  std::vector<bool> flags(shape.size(), false);
  for (int64_t axis : axes) {
    int64_t a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) {
      call.fail("ERR_VALUE", "axis " + std::to_string(axis) + " is out of range for shape " + shapeString(shape));
    }
    if (flags[a]) call.fail("ERR_VALUE", "axis " + std::to_string(axis) + " appears twice in " + shapeString(axes));
    flags[a] = true;
  }
  return flags;
}

// The `shape` attribute, checked so that its element count fits in int64.
Shape checkedShape(const KernelCall& call) {
  Shape shape = call.shape("shape");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) call.fail("ERR_SHAPE", "shape " + shapeString(shape) + " is too large");
  }
  return shape;
}

// The dtype out must have, or fails when x's dtype does not support op.
DType reduceOutDType(const KernelCall& call, ReduceOp op, DType x) {
  if (x == DType::Float32) return DType::Float32;
  if (x == DType::Int32 && op != ReduceOp::Mean) return DType::Int32;
  if (x == DType::UInt8 && op == ReduceOp::Sum) return DType::Int32;
  if (x == DType::UInt8 && (op == ReduceOp::Max || op == ReduceOp::Min)) return DType::UInt8;
  if (x == DType::Float64) call.fail("ERR_NOT_SUPPORTED", "float64 is not supported by the cuda backend");
  call.fail("ERR_DTYPE", "op '" + call.string("op") + "' does not support dtype " + dtypeName(x));
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
// equals, so a chunked pass picks the first best as the sequential loop does.
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
    return beats<T, kMax>(b.value, a.value) ? b : a;
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
      [=] DEEPNODE_HD(int64_t o, Candidate<T> best) { out[o] = static_cast<int32_t>(best.index); });
}

template <typename T>
void argReduceDispatch(bool isMax, const Extent& e, int32_t* out, const T* x) {
  if (isMax)
    argReduceTyped<T, true>(e, out, x);
  else
    argReduceTyped<T, false>(e, out, x);
}

// The [outer, dim, inner] view of x around `axis`, after checking the axis and sizes.
Extent argExtent(const KernelCall& call, const std::string& op) {
  Shape shape = checkedShape(call);
  int64_t axis = call.integer("axis"), ndim = static_cast<int64_t>(shape.size());
  if (axis < 0) axis += ndim;
  if (axis < 0 || axis >= ndim) {
    call.fail("ERR_VALUE",
              "axis " + std::to_string(call.integer("axis")) + " is out of range for shape " + shapeString(shape));
  }
  Extent e{1, shape[axis], 1, numel(shape)};
  for (int64_t d = 0; d < axis; ++d) e.outer *= shape[d];
  for (int64_t d = axis + 1; d < ndim; ++d) e.inner *= shape[d];
  call.expectSize(1, "x", e.total);
  call.expectSize(0, "out", e.outer * e.inner);
  if (e.dim == 0 && e.outer * e.inner > 0) {
    call.fail("ERR_VALUE", "cannot take the " + op + " over axis " + std::to_string(axis) + " of size 0 in shape " +
                               shapeString(shape));
  }
  if (e.dim > INT32_MAX) call.fail("ERR_VALUE", "axis is too long for int32 indices");
  return e;
}

void reduce(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  ReduceOp op = parseReduceOp(call);
  Shape shape = checkedShape(call);
  std::vector<bool> flags = reducedAxes(call, shape, call.ints("axes"));
  call.buffer(0, "out", reduceOutDType(call, op, x.dtype));
  call.expectSize(1, "x", numel(shape));
  int64_t outputs = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!flags[d]) outputs *= shape[d];
    if (flags[d] && shape[d] == 0 && (op == ReduceOp::Max || op == ReduceOp::Min)) {
      call.fail("ERR_VALUE", "cannot take the " + call.string("op") + " over axis " + std::to_string(d) +
                                 " of size 0 in shape " + shapeString(shape));
    }
  }
  call.expectSize(0, "out", outputs);

  ReducePlan plan = planReduce(call, shape, flags);
  if (plan.outputs == 0) return;
  if (x.dtype == DType::Float32) return reduceFloat(op, plan, out.as<float>(), x.as<float>());
  if (x.dtype == DType::Int32) return reduceInt(op, plan, out.as<int32_t>(), x.as<int32_t>());
  reduceUInt8(op, plan, out.data, x.as<uint8_t>());
}

void argReduce(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Int32);
  const Buffer& x = call.buffer(1, "x");
  std::string op = call.string("op");
  if (op != "argmax" && op != "argmin") call.fail("ERR_VALUE", "unknown arg_reduce op '" + op + "'");
  Extent e = argExtent(call, op);
  if (e.total == 0) return;

  bool isMax = op == "argmax";
  switch (x.dtype) {
    case DType::Float32: return argReduceDispatch(isMax, e, out.as<int32_t>(), x.as<float>());
    case DType::Int32: return argReduceDispatch(isMax, e, out.as<int32_t>(), x.as<int32_t>());
    case DType::UInt8: return argReduceDispatch(isMax, e, out.as<int32_t>(), x.as<uint8_t>());
    case DType::Int8: return argReduceDispatch(isMax, e, out.as<int32_t>(), x.as<int8_t>());
    case DType::Float64: call.fail("ERR_NOT_SUPPORTED", "float64 is not supported by the cuda backend");
  }
}

}  // namespace red_reduce

void registerReduceKernels(KernelTable& table) {
  table["reduce"] = red_reduce::reduce;
  table["arg_reduce"] = red_reduce::argReduce;
}

}  // namespace deepnode::cuda
