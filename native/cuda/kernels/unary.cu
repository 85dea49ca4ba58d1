// unary on CUDA: every UnaryOp of the cpu kernel (native/cpu/elementwise.cc) on float32,
// and neg, abs, sign, square and affine on int32 with the cpu's wrapping. Float values are
// computed in double and rounded once by the store, as the reference backend does, which
// keeps the transcendental ops well inside the cpu's tolerances.
#include <math.h>

#include <cstdint>
#include <string>

#include "../../core/args/elementwise.h"
#include "../launch.h"
#include "elementwise.h"
#include "unary_math.h"

namespace deepnode::cuda {

namespace elementwise {

using namespace args;

// The float ops, as the cpu defines them (sign(0) = 0, relu keeps NaN, clamp lets beta win
// when alpha > beta, round is half to even), in double.
DEEPNODE_HD inline double unaryValue(UnaryOp op, double x, double alpha, double beta) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return ::exp(x);
    case UnaryOp::Log: return ::log(x);
    case UnaryOp::Sqrt: return ::sqrt(x);
    case UnaryOp::Abs: return ::fabs(x);
    case UnaryOp::Sign: return static_cast<double>((0.0 < x) - (x < 0.0));
    case UnaryOp::Relu: return x < 0.0 ? 0.0 : x;
    case UnaryOp::Sigmoid: return math::sigmoid(x);
    case UnaryOp::Tanh: return ::tanh(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Reciprocal: return 1.0 / x;
    case UnaryOp::Sin: return ::sin(x);
    case UnaryOp::Cos: return ::cos(x);
    case UnaryOp::Floor: return ::floor(x);
    case UnaryOp::Ceil: return ::ceil(x);
    case UnaryOp::Round: return ::rint(x);
    case UnaryOp::Affine: return alpha * x + beta;
    case UnaryOp::Pow: return ::pow(x, alpha);
    case UnaryOp::Clamp: return math::clamp(x, alpha, beta);
    case UnaryOp::Erf: return ::erf(x);
    case UnaryOp::Gelu: return math::gelu(x);
    case UnaryOp::GeluTanh: return math::geluTanh(x);
    case UnaryOp::Silu: return x * math::sigmoid(x);
  }
  return x;
}

void unaryFloat(UnaryOp op, float* out, const float* x, int64_t n, double alpha, double beta) {
  forEach("unary", n, [=] DEEPNODE_HD(int64_t i) {
    out[i] = static_cast<float>(unaryValue(op, static_cast<double>(x[i]), alpha, beta));
  });
}

// int32: the cpu's wrapping neg, abs and square; affine exact when alpha and beta are
// integers, else in double truncated toward zero and saturated.
struct IntAffine {
  double alpha, beta;
  uint64_t a, b;
  bool integral;
};

DEEPNODE_HD inline int32_t wrapInt32(uint64_t v) {
  return static_cast<int32_t>(static_cast<uint32_t>(v));
}

DEEPNODE_HD inline int32_t affineInt(int32_t x, const IntAffine& p) {
  if (p.integral) return wrapInt32(p.a * static_cast<uint64_t>(static_cast<int64_t>(x)) + p.b);
  double v = ::trunc(p.alpha * x + p.beta);
  if (v != v) return 0;
  v = v < -2147483648.0 ? -2147483648.0 : v;
  v = v > 2147483647.0 ? 2147483647.0 : v;
  return static_cast<int32_t>(v);
}

DEEPNODE_HD inline int32_t unaryInt(UnaryOp op, int32_t v, const IntAffine& p) {
  const uint64_t wide = static_cast<uint64_t>(static_cast<int64_t>(v));
  switch (op) {
    case UnaryOp::Neg: return wrapInt32(0 - wide);
    case UnaryOp::Abs: return v < 0 ? wrapInt32(0 - wide) : v;
    case UnaryOp::Sign: return (0 < v) - (v < 0);
    case UnaryOp::Square: return wrapInt32(wide * wide);
    default: return affineInt(v, p);
  }
}

void unaryIntRun(UnaryOp op, int32_t* out, const int32_t* x, int64_t n, IntAffine p) {
  forEach("unary", n, [=] DEEPNODE_HD(int64_t i) { out[i] = unaryInt(op, x[i], p); });
}

IntAffine intAffine(const KernelCall& call) {
  IntAffine p{call.number("alpha", 1), call.number("beta", 0), 0, 0, false};
  p.integral = affineIsIntegral(p.alpha, p.beta);
  if (p.integral) {
    p.a = static_cast<uint64_t>(static_cast<int64_t>(p.alpha));
    p.b = static_cast<uint64_t>(static_cast<int64_t>(p.beta));
  }
  return p;
}

void unary(KernelCall& call) {
  UnaryOp op = readUnaryArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];

  if (x.dtype == DType::Float32) {
    double alpha = call.number("alpha", 0), beta = call.number("beta", 0);
    return unaryFloat(op, out.as<float>(), x.as<float>(), x.size, alpha, beta);
  }
  if (x.dtype == DType::Int32 && unaryHasIntKernel(op)) {
    return unaryIntRun(op, out.as<int32_t>(), x.as<int32_t>(), x.size, intAffine(call));
  }
  failUnaryDType(call, x.dtype, "cuda");
}

}  // namespace elementwise

void registerUnaryKernels(KernelTable& table) {
  table["unary"] = elementwise::unary;
}

}  // namespace deepnode::cuda
