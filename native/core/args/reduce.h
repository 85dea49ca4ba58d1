// The reduction family's attributes and checks, read the same way by the cpu kernels and
// the CUDA kernels: reduce's op, axes, shape and output dtype; the [outer, dim, inner]
// extent of softmax and arg_reduce. Errors name the backend where it matters.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../hd.h"
#include "../kernel.h"

namespace deepnode::args {

enum class ReduceOp { Sum, Mean, Max, Min, Prod };

inline ReduceOp parseReduceOp(const KernelCall& call) {
  std::string name = call.string("op");
  if (name == "sum") return ReduceOp::Sum;
  if (name == "mean") return ReduceOp::Mean;
  if (name == "max") return ReduceOp::Max;
  if (name == "min") return ReduceOp::Min;
  if (name == "prod") return ReduceOp::Prod;
  call.fail("ERR_VALUE", "unknown reduce op '" + name + "'");
}

// Reduced axes as flags, after checking each is in range (negative counts from the end)
// and appears once.
inline std::vector<bool> reducedAxes(const KernelCall& call, const Shape& shape, const std::vector<int64_t>& axes) {
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
inline Shape checkedShape(const KernelCall& call) {
  Shape shape = call.shape("shape");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) call.fail("ERR_SHAPE", "shape " + shapeString(shape) + " is too large");
  }
  return shape;
}

// The dtype out must have, or fails when x's dtype does not support op; `backend` ("cpu",
// "cuda") names the backend that lacks float64.
inline DType reduceOutDType(const KernelCall& call, ReduceOp op, DType x, const char* backend) {
  if (x == DType::Float32) return DType::Float32;
  if (x == DType::Int32 && op != ReduceOp::Mean) return DType::Int32;
  if (x == DType::UInt8 && op == ReduceOp::Sum) return DType::Int32;
  if (x == DType::UInt8 && (op == ReduceOp::Max || op == ReduceOp::Min)) return DType::UInt8;
  if (x == DType::Float64)
    call.fail("ERR_NOT_SUPPORTED", std::string("float64 is not supported by the ") + backend + " backend");
  call.fail("ERR_DTYPE", "op '" + call.string("op") + "' does not support dtype " + dtypeName(x));
}

// reduce's attributes, checked against its buffers (out 0, x 1): out's dtype and both
// sizes, and that max and min reduce no empty axis.
struct ReduceArgs {
  ReduceOp op;
  Shape shape;
  std::vector<bool> reduced;  // one flag per dim of shape
};

inline ReduceArgs readReduce(const KernelCall& call, const char* backend) {
  call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  ReduceArgs a{parseReduceOp(call), checkedShape(call), {}};
  a.reduced = reducedAxes(call, a.shape, call.ints("axes"));
  call.buffer(0, "out", reduceOutDType(call, a.op, x.dtype, backend));
  call.expectSize(1, "x", numel(a.shape));
  int64_t outputs = 1;
  for (size_t d = 0; d < a.shape.size(); ++d) {
    if (!a.reduced[d]) outputs *= a.shape[d];
    if (a.reduced[d] && a.shape[d] == 0 && (a.op == ReduceOp::Max || a.op == ReduceOp::Min)) {
      call.fail("ERR_VALUE", "cannot take the " + call.string("op") + " over axis " + std::to_string(d) +
                                 " of size 0 in shape " + shapeString(a.shape));
    }
  }
  call.expectSize(0, "out", outputs);
  return a;
}

// Calls run(Op{}, out, x) with the combiner every backend uses for op on x's dtype (float32,
// int32 or uint8, as readReduce allows): sums and products of floats in double, integer
// sums in int64 (uint8 sums give int32), integer products in uint64 (wrapping), max and min
// in the element type. Sum<T, A>, Mean<T>, Max<T>, Min<T> and Prod<T, A> are the backend's
// combiners, run its loop over them.
template <template <class, class> class Sum, template <class> class Mean, template <class> class Max,
          template <class> class Min, template <class, class> class Prod, typename Run>
void dispatchReduce(ReduceOp op, DType dtype, void* out, const void* x, Run run) {
  if (dtype == DType::Float32) {
    float* o = static_cast<float*>(out);
    const float* xs = static_cast<const float*>(x);
    switch (op) {
      case ReduceOp::Sum: return run(Sum<float, double>{}, o, xs);
      case ReduceOp::Mean: return run(Mean<float>{}, o, xs);
      case ReduceOp::Max: return run(Max<float>{}, o, xs);
      case ReduceOp::Min: return run(Min<float>{}, o, xs);
      case ReduceOp::Prod: return run(Prod<float, double>{}, o, xs);
    }
    return;
  }
  if (dtype == DType::Int32) {
    int32_t* o = static_cast<int32_t*>(out);
    const int32_t* xs = static_cast<const int32_t*>(x);
    switch (op) {
      case ReduceOp::Sum: return run(Sum<int32_t, int64_t>{}, o, xs);
      case ReduceOp::Max: return run(Max<int32_t>{}, o, xs);
      case ReduceOp::Min: return run(Min<int32_t>{}, o, xs);
      case ReduceOp::Prod: return run(Prod<int32_t, uint64_t>{}, o, xs);
      default: return;
    }
  }
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  if (op == ReduceOp::Sum) return run(Sum<uint8_t, int64_t>{}, static_cast<int32_t*>(out), xs);
  if (op == ReduceOp::Max) return run(Max<uint8_t>{}, static_cast<uint8_t*>(out), xs);
  run(Min<uint8_t>{}, static_cast<uint8_t*>(out), xs);
}

// A sum in double, for the cuda reductions (red::segmentedReduce) and norms' cpu lanes.
struct SumDouble {
  using Acc = double;
  static DEEPNODE_HD Acc init() { return 0; }
  static DEEPNODE_HD Acc add(Acc acc, double x) { return acc + x; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return a + b; }
};

// The [outer, dim, inner] view of softmax and arg_reduce.
struct Extent {
  int64_t outer, dim, inner, total;
};

inline Extent readExtent(const KernelCall& call) {
  Extent e{call.integer("outer"), call.integer("dim"), call.integer("inner"), 0};
  if (e.outer < 0 || e.dim < 0 || e.inner < 0) {
    call.fail("ERR_SHAPE", "outer, dim and inner must be non-negative, got [" + std::to_string(e.outer) + ", " +
                               std::to_string(e.dim) + ", " + std::to_string(e.inner) + "]");
  }
  int64_t od = 0;
  if (__builtin_mul_overflow(e.outer, e.dim, &od) || __builtin_mul_overflow(od, e.inner, &e.total)) {
    call.fail("ERR_SHAPE", "[outer, dim, inner] is too large");
  }
  return e;
}

// arg_reduce's op ("argmax" or "argmin") and the [outer, dim, inner] view of x around
// `axis`, after checking the axis and the sizes of out (0) and x (1).
struct ArgReduceArgs {
  bool isMax;
  Extent extent;
};

inline ArgReduceArgs readArgReduce(const KernelCall& call) {
  call.buffer(0, "out", DType::Int32);
  call.buffer(1, "x");
  std::string op = call.string("op");
  if (op != "argmax" && op != "argmin") call.fail("ERR_VALUE", "unknown arg_reduce op '" + op + "'");
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
  if (e.dim > std::numeric_limits<int32_t>::max()) call.fail("ERR_VALUE", "axis is too long for int32 indices");
  return {op == "argmax", e};
}

// Calls run(kMax, xs) with kMax a std::bool_constant (argmax or argmin) and xs the data of x
// (buffer 1) as its element type; float64 fails naming the backend.
template <typename Run>
void dispatchArgReduce(const KernelCall& call, bool isMax, const char* backend, Run run) {
  const Buffer& x = call.buffers[1];
  auto withOp = [&](const auto* xs) {
    if (isMax)
      run(std::true_type{}, xs);
    else
      run(std::false_type{}, xs);
  };
  switch (x.dtype) {
    case DType::Float32: return withOp(x.as<float>());
    case DType::Int32: return withOp(x.as<int32_t>());
    case DType::UInt8: return withOp(x.as<uint8_t>());
    case DType::Int8: return withOp(x.as<int8_t>());
    case DType::Float64:
      call.fail("ERR_NOT_SUPPORTED", std::string("float64 is not supported by the ") + backend + " backend");
  }
}

// softmax's and softmax_backward's [outer, dim, inner] and `log` flag, after checking that
// the float32 buffers 0, 1, ... named by `roles` each hold outer * dim * inner elements.
struct SoftmaxArgs {
  Extent extent;
  bool log;
};

inline SoftmaxArgs readSoftmax(const KernelCall& call, std::initializer_list<const char*> roles) {
  size_t index = 0;
  for (const char* role : roles) call.buffer(index++, role, DType::Float32);
  Extent e = readExtent(call);
  bool log = call.flag("log", false);
  index = 0;
  for (const char* role : roles) call.expectSize(index++, role, e.total);
  return {e, log};
}

}  // namespace deepnode::args
