// The element-wise kernels' attributes and checks, shared by the cpu kernels
// (native/cpu/elementwise.cc) and the CUDA ones (native/cuda/kernels/{unary,binary,copy}.cu):
// the op names of unary and binary, which dtypes each op takes, and the buffers and
// shapes of binary, where, expand and permute. Only the float64 message differs, by the
// backend it names.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../kernel.h"
#include "common.h"

namespace deepnode::args {

// ---------------------------------------------------------------------------------------
// unary

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Abs,
  Sign,
  Relu,
  Sigmoid,
  Tanh,
  Square,
  Reciprocal,
  Sin,
  Cos,
  Floor,
  Ceil,
  Round,
  Affine,
  Pow,
  Clamp,
  Erf,
  Gelu,
  GeluTanh,
  Silu,
};

struct NamedUnaryOp {
  const char* name;
  UnaryOp op;
};

inline constexpr NamedUnaryOp kUnaryOps[] = {
    {"neg", UnaryOp::Neg},
    {"exp", UnaryOp::Exp},
    {"log", UnaryOp::Log},
    {"sqrt", UnaryOp::Sqrt},
    {"abs", UnaryOp::Abs},
    {"sign", UnaryOp::Sign},
    {"relu", UnaryOp::Relu},
    {"sigmoid", UnaryOp::Sigmoid},
    {"tanh", UnaryOp::Tanh},
    {"square", UnaryOp::Square},
    {"reciprocal", UnaryOp::Reciprocal},
    {"sin", UnaryOp::Sin},
    {"cos", UnaryOp::Cos},
    {"floor", UnaryOp::Floor},
    {"ceil", UnaryOp::Ceil},
    {"round", UnaryOp::Round},
    {"affine", UnaryOp::Affine},
    {"pow", UnaryOp::Pow},
    {"clamp", UnaryOp::Clamp},
    {"erf", UnaryOp::Erf},
    {"gelu", UnaryOp::Gelu},
    {"gelu_tanh", UnaryOp::GeluTanh},
    {"silu", UnaryOp::Silu},
};

inline UnaryOp parseUnaryOp(const KernelCall& call) {
  std::string name = call.string("op");
  for (const NamedUnaryOp& entry : kUnaryOps) {
    if (name == entry.name) return entry.op;
  }
  call.fail("ERR_VALUE", "unknown unary op '" + name + "'");
}

// unary's buffers [out, x] of one dtype and size, and its op.
inline UnaryOp readUnaryArgs(const KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  UnaryOp op = parseUnaryOp(call);
  checkSameDType(call, out, x, "out", "x");
  call.expectSize(0, "out", x.size);
  return op;
}

// The ops with an int32 kernel; every op has a float32 one.
inline bool unaryHasIntKernel(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign || op == UnaryOp::Square ||
         op == UnaryOp::Affine;
}

// int32 affine is exact wrapping arithmetic when alpha and beta are integers (in int64's
// range), else computed in double and truncated.
inline bool affineIsIntegral(double alpha, double beta) {
  return std::fabs(alpha) < 9.2e18 && std::fabs(beta) < 9.2e18 && std::trunc(alpha) == alpha &&
         std::trunc(beta) == beta;
}

// The error for a dtype that unary has no kernel for; `backend` is "cpu" or "cuda".
[[noreturn]] inline void failUnaryDType(const KernelCall& call, DType dtype, const char* backend) {
  if (dtype == DType::Float64) {
    call.fail("ERR_NOT_SUPPORTED",
              std::string("float64 is not supported by the ") + backend + " backend; cast to float32");
  }
  call.fail("ERR_DTYPE", "op '" + call.string("op") + "' does not support dtype " + dtypeName(dtype));
}

// ---------------------------------------------------------------------------------------
// binary

enum class BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Maximum,
  Minimum,
  FloorDiv,
  Remainder,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  ReluBackward,
  SigmoidBackward,
  TanhBackward,
  GeluBackward,
  GeluTanhBackward,
  SiluBackward,
};

struct NamedBinaryOp {
  const char* name;
  BinaryOp op;
};

inline constexpr NamedBinaryOp kBinaryOps[] = {
    {"add", BinaryOp::Add},
    {"sub", BinaryOp::Sub},
    {"mul", BinaryOp::Mul},
    {"div", BinaryOp::Div},
    {"pow", BinaryOp::Pow},
    {"maximum", BinaryOp::Maximum},
    {"minimum", BinaryOp::Minimum},
    {"floordiv", BinaryOp::FloorDiv},
    {"remainder", BinaryOp::Remainder},
    {"eq", BinaryOp::Eq},
    {"ne", BinaryOp::Ne},
    {"lt", BinaryOp::Lt},
    {"le", BinaryOp::Le},
    {"gt", BinaryOp::Gt},
    {"ge", BinaryOp::Ge},
    {"relu_backward", BinaryOp::ReluBackward},
    {"sigmoid_backward", BinaryOp::SigmoidBackward},
    {"tanh_backward", BinaryOp::TanhBackward},
    {"gelu_backward", BinaryOp::GeluBackward},
    {"gelu_tanh_backward", BinaryOp::GeluTanhBackward},
    {"silu_backward", BinaryOp::SiluBackward},
};

inline BinaryOp parseBinaryOp(const KernelCall& call) {
  std::string name = call.string("op");
  for (const NamedBinaryOp& entry : kBinaryOps) {
    if (name == entry.name) return entry.op;
  }
  call.fail("ERR_VALUE", "unknown binary op '" + name + "'");
}

inline bool isComparison(BinaryOp op) {
  return op >= BinaryOp::Eq && op <= BinaryOp::Ge;
}

// Ops a dtype supports: float32 all; int32 the arithmetic and comparisons (div is cast
// to float above this layer); uint8 (bool) comparisons and the logical and/or as
// mul/minimum and maximum.
inline bool binarySupports(DType dtype, BinaryOp op) {
  switch (dtype) {
    case DType::Float32: return true;
    case DType::Int32:
      return op != BinaryOp::Div && op != BinaryOp::ReluBackward && op != BinaryOp::SigmoidBackward &&
             op != BinaryOp::TanhBackward && op < BinaryOp::GeluBackward;
    case DType::UInt8:
      return isComparison(op) || op == BinaryOp::Maximum || op == BinaryOp::Minimum || op == BinaryOp::Mul;
    default: return false;
  }
}

// binary's op and shapes; a and b broadcast to outShape.
struct BinaryArgs {
  BinaryOp op;
  Shape outShape, aShape, bShape;
};

// Reads and checks binary's buffers [out, a, b] and attributes; `backend` ("cpu" or
// "cuda") is named in the float64 error. The integer divisor check stays with the caller.
inline BinaryArgs readBinaryArgs(const KernelCall& call, const char* backend) {
  call.buffer(0, "out");
  const Buffer& a = call.buffer(1, "a");
  const Buffer& b = call.buffer(2, "b");
  BinaryArgs args{parseBinaryOp(call), checkedShape(call, "outShape"), checkedShape(call, "aShape"),
                  checkedShape(call, "bShape")};

  checkSameDType(call, a, b, "a", "b");
  if (a.dtype == DType::Float64) {
    call.fail("ERR_NOT_SUPPORTED", std::string("float64 is not supported by the ") + backend + " backend");
  }
  if (!binarySupports(a.dtype, args.op)) {
    call.fail("ERR_DTYPE", "op '" + call.string("op") + "' does not support dtype " + dtypeName(a.dtype));
  }
  DType outDType = isComparison(args.op) ? DType::UInt8 : a.dtype;
  call.buffer(0, "out", outDType);
  checkBroadcast(call, args.outShape, args.aShape, "a");
  checkBroadcast(call, args.outShape, args.bShape, "b");
  call.expectSize(0, "out", numel(args.outShape));
  call.expectSize(1, "a", numel(args.aShape));
  call.expectSize(2, "b", numel(args.bShape));
  return args;
}

// Integer division by zero and negative integer powers are errors, found before any write.
// They name the element-wise op (floordiv, remainder, pow), as the reference backend does.
[[noreturn]] inline void failIntegerDivisor(const std::string& name, bool division) {
  if (division) throw KernelError("ERR_VALUE", name + ": integer division by zero");
  throw KernelError("ERR_VALUE", name + ": integers to negative integer powers are not allowed");
}
[[noreturn]] inline void failIntegerDivisor(const KernelCall& call, bool division) {
  failIntegerDivisor(call.string("op"), division);
}

// ---------------------------------------------------------------------------------------
// where, expand and permute

// Element strides of `in` aligned to out's dims, 0 where `in` is broadcast.
inline std::vector<int64_t> alignedStrides(const Shape& out, const Shape& in) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (size_t i = 0; i < in.size(); ++i) {
    size_t inDim = in.size() - 1 - i, outDim = out.size() - 1 - i;
    strides[outDim] = in[inDim] == 1 ? 0 : stride;
    stride *= in[inDim];
  }
  return strides;
}

constexpr int kMaxBroadcastOperands = 3;

// The dims of out = f(ins...) that matter, as every backend plans a broadcast: size-1 dims
// dropped and runs that stay contiguous for every operand merged, with each operand's
// element stride along them (0 where it is broadcast). Empty for a scalar output.
struct BroadcastDims {
  Shape shape;
  std::vector<int64_t> strides[kMaxBroadcastOperands];
};

inline BroadcastDims mergeBroadcastDims(const Shape& out, const std::vector<Shape>& ins) {
  const int operands = static_cast<int>(ins.size());
  std::vector<int64_t> full[kMaxBroadcastOperands];
  for (int k = 0; k < operands; ++k) full[k] = alignedStrides(out, ins[k]);

  BroadcastDims dims;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    bool merge = !dims.shape.empty();
    for (int k = 0; merge && k < operands; ++k) merge = dims.strides[k].back() == full[k][d] * out[d];
    if (merge) {
      dims.shape.back() *= out[d];
      for (int k = 0; k < operands; ++k) dims.strides[k].back() = full[k][d];
      continue;
    }
    dims.shape.push_back(out[d]);
    for (int k = 0; k < operands; ++k) dims.strides[k].push_back(full[k][d]);
  }
  return dims;
}

// x's shape and perm reduced to the dims that matter: size-1 dims dropped and dims that
// stay adjacent in both layouts merged. outShape[i] = x's dim perm[i]; xStride[i] is the
// stride in x of out's dim i.
struct PermutePlan {
  Shape outShape;
  std::vector<int64_t> xStride;
};

inline PermutePlan planPermute(const Shape& shape, const std::vector<int64_t>& perm) {
  std::vector<int64_t> stride(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) stride[d] = stride[d + 1] * shape[d + 1];
  PermutePlan plan;
  for (int64_t axis : perm) {
    if (shape[axis] == 1) continue;
    // Mergeable when this axis is the next non-trivial one after the previous in x's layout.
    if (!plan.outShape.empty() && plan.xStride.back() == stride[axis] * shape[axis]) {
      plan.outShape.back() *= shape[axis];
      plan.xStride.back() = stride[axis];
    } else {
      plan.outShape.push_back(shape[axis]);
      plan.xStride.push_back(stride[axis]);
    }
  }
  return plan;
}

struct WhereArgs {
  Shape outShape, condShape, aShape, bShape;
};

// where's buffers [out, cond (uint8), a, b]: a, b and out of one dtype, every input
// broadcasting to outShape.
inline WhereArgs readWhereArgs(const KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  call.buffer(1, "cond", DType::UInt8);
  const Buffer& a = call.buffer(2, "a");
  const Buffer& b = call.buffer(3, "b");
  checkSameDType(call, a, b, "a", "b");
  checkSameDType(call, out, a, "out", "a");
  WhereArgs args;
  args.outShape = checkedShape(call, "outShape");
  args.condShape = checkedShape(call, "condShape");
  args.aShape = checkedShape(call, "aShape");
  args.bShape = checkedShape(call, "bShape");
  checkBroadcast(call, args.outShape, args.condShape, "cond");
  checkBroadcast(call, args.outShape, args.aShape, "a");
  checkBroadcast(call, args.outShape, args.bShape, "b");
  call.expectSize(0, "out", numel(args.outShape));
  call.expectSize(1, "cond", numel(args.condShape));
  call.expectSize(2, "a", numel(args.aShape));
  call.expectSize(3, "b", numel(args.bShape));
  return args;
}

struct ExpandArgs {
  Shape outShape, xShape;
};

// expand's buffers [out, x] of one dtype, xShape broadcasting to outShape.
inline ExpandArgs readExpandArgs(const KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  checkSameDType(call, out, x, "out", "x");
  ExpandArgs args;
  args.outShape = checkedShape(call, "outShape");
  args.xShape = checkedShape(call, "xShape");
  checkBroadcast(call, args.outShape, args.xShape, "x");
  call.expectSize(0, "out", numel(args.outShape));
  call.expectSize(1, "x", numel(args.xShape));
  return args;
}

inline void checkPermutation(const KernelCall& call, const Shape& shape, const std::vector<int64_t>& perm) {
  std::vector<bool> seen(shape.size(), false);
  bool ok = perm.size() == shape.size();
  for (size_t i = 0; ok && i < perm.size(); ++i) {
    ok = perm[i] >= 0 && perm[i] < static_cast<int64_t>(shape.size()) && !seen[perm[i]];
    if (ok) seen[perm[i]] = true;
  }
  if (!ok) {
    call.fail("ERR_VALUE", "perm " + shapeString(perm) + " is not a permutation of the " +
                               std::to_string(shape.size()) + " dims of shape " + shapeString(shape));
  }
}

// x's shape and the permutation of its dims.
struct PermuteArgs {
  Shape shape;
  std::vector<int64_t> perm;
};

// permute's buffers [out, x] of one dtype and of shape's size, and a valid perm.
inline PermuteArgs readPermuteArgs(const KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  checkSameDType(call, out, x, "out", "x");
  PermuteArgs args{checkedShape(call, "shape"), call.ints("perm")};
  checkPermutation(call, args.shape, args.perm);
  call.expectSize(1, "x", numel(args.shape));
  call.expectSize(0, "out", numel(args.shape));
  return args;
}

}  // namespace deepnode::args
