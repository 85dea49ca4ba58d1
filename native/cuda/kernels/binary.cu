// binary on CUDA: every BinaryOp of the cpu kernel (native/cpu/elementwise.cc) with numpy
// broadcasting over outShape, aShape and bShape; float32 computed in double and rounded
// once, int32 with the cpu's wrap-around semantics, uint8 (bool) comparisons and the
// logical and/or as mul/minimum and maximum. Comparisons write uint8. Integer division by
// zero and negative integer powers are found by a deferred check (checks.h), or before any
// write with sync checks on; the kernels give 0 for a zero divisor, 1 for a negative power.
#include <math.h>

#include <cstdint>
#include <string>

#include "../../core/args/elementwise.h"
#include "../launch.h"
#include "elementwise.h"
#include "reductions.h"
#include "unary_math.h"

namespace deepnode::cuda {

namespace elementwise {

using namespace args;

// Comparisons, for every dtype.
template <typename T>
DEEPNODE_HD inline uint8_t compareValues(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Eq: return a == b;
    case BinaryOp::Ne: return a != b;
    case BinaryOp::Lt: return a < b;
    case BinaryOp::Le: return a <= b;
    case BinaryOp::Gt: return a > b;
    default: return a >= b;
  }
}

// maximum/minimum propagate NaN, as torch.maximum does.
template <typename T>
DEEPNODE_HD inline T maximumOf(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T>
DEEPNODE_HD inline T minimumOf(T a, T b) {
  return (a < b || a != a) ? a : b;
}

// PyTorch's div_floor: from fmod, so infinities and signed zeros come out as there.
DEEPNODE_HD inline double floorDivFloat(double x, double y) {
  if (y == 0) return x / y;
  double mod = ::fmod(x, y);
  double q = (x - mod) / y;
  if (mod != 0 && ((y < 0) != (mod < 0))) q -= 1;
  if (q == 0) return ::copysign(0.0, x / y);
  double floored = ::floor(q);
  return q - floored > 0.5 ? floored + 1 : floored;
}

// Remainder with the divisor's sign, as torch.remainder (fmod, then shifted by b).
DEEPNODE_HD inline double remainderFloat(double a, double b) {
  double mod = ::fmod(a, b);
  if (mod != 0 && ((b < 0) != (mod < 0))) mod += b;
  return mod;
}

// The float ops in double; the cpu's float kernels round each step, the reference once.
DEEPNODE_HD inline double binaryFloat(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return ::pow(a, b);
    case BinaryOp::Maximum: return maximumOf(a, b);
    case BinaryOp::Minimum: return minimumOf(a, b);
    case BinaryOp::FloorDiv: return floorDivFloat(a, b);
    case BinaryOp::Remainder: return remainderFloat(a, b);
    case BinaryOp::ReluBackward: return b > 0 ? a : 0.0;
    case BinaryOp::SigmoidBackward: return a * b * (1.0 - b);
    case BinaryOp::TanhBackward: return a * (1.0 - b * b);
    case BinaryOp::GeluBackward: return a * math::geluGrad(b);
    case BinaryOp::GeluTanhBackward: return a * math::geluTanhGrad(b);
    case BinaryOp::SiluBackward: return a * math::siluGrad(b);
    default: return 0;
  }
}

// Integer arithmetic wraps modulo 2^32, as PyTorch's does, without signed overflow.
DEEPNODE_HD inline int32_t wrap32(uint64_t v) {
  return static_cast<int32_t>(static_cast<uint32_t>(v));
}

// Integer pow by squaring, wrapping (a negative exponent, which the check reports, gives 1).
DEEPNODE_HD inline int32_t powInt(int32_t a, int32_t b) {
  uint64_t result = 1, base = static_cast<uint64_t>(static_cast<int64_t>(a));
  for (int64_t e = b; e > 0; e >>= 1) {
    if (e & 1) result = static_cast<uint32_t>(result * base);
    base = static_cast<uint32_t>(base * base);
  }
  return wrap32(result);
}

// Python floor division and remainder; a zero divisor (which the check reports) gives 0, and
// INT_MIN / -1 wraps instead of trapping.
DEEPNODE_HD inline int32_t floorDivInt(int32_t a, int32_t b) {
  if (b == 0) return 0;
  if (b == -1) return wrap32(0 - static_cast<uint64_t>(static_cast<int64_t>(a)));
  int32_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
DEEPNODE_HD inline int32_t remainderInt(int32_t a, int32_t b) {
  if (b == 0 || b == -1) return 0;
  int32_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

DEEPNODE_HD inline int32_t binaryInt(BinaryOp op, int32_t a, int32_t b) {
  const uint64_t wa = static_cast<uint64_t>(static_cast<int64_t>(a));
  const uint64_t wb = static_cast<uint64_t>(static_cast<int64_t>(b));
  switch (op) {
    case BinaryOp::Add: return wrap32(wa + wb);
    case BinaryOp::Sub: return wrap32(wa - wb);
    case BinaryOp::Mul: return wrap32(wa * wb);
    case BinaryOp::Pow: return powInt(a, b);
    case BinaryOp::Maximum: return maximumOf(a, b);
    case BinaryOp::Minimum: return minimumOf(a, b);
    case BinaryOp::FloorDiv: return floorDivInt(a, b);
    case BinaryOp::Remainder: return remainderInt(a, b);
    default: return 0;
  }
}

// uint8 holds bools: mul is and, maximum or, minimum and.
DEEPNODE_HD inline uint8_t binaryBool(BinaryOp op, uint8_t a, uint8_t b) {
  switch (op) {
    case BinaryOp::Mul: return static_cast<uint8_t>(a * b);
    case BinaryOp::Maximum: return a > b ? a : b;
    default: return a < b ? a : b;
  }
}

template <typename T>
void compareRun(BinaryOp op, const Strides& s, int64_t n, uint8_t* out, const T* a, const T* b) {
  forEach("binary", n, [=] DEEPNODE_HD(int64_t i) {
    int64_t at[2];
    offsetsOf(s, i, at);
    out[i] = compareValues(op, a[at[0]], b[at[1]]);
  });
}

void floatRun(BinaryOp op, const Strides& s, int64_t n, float* out, const float* a, const float* b) {
  forEach("binary", n, [=] DEEPNODE_HD(int64_t i) {
    int64_t at[2];
    offsetsOf(s, i, at);
    out[i] = static_cast<float>(binaryFloat(op, a[at[0]], b[at[1]]));
  });
}

void intRun(BinaryOp op, const Strides& s, int64_t n, int32_t* out, const int32_t* a, const int32_t* b) {
  forEach("binary", n, [=] DEEPNODE_HD(int64_t i) {
    int64_t at[2];
    offsetsOf(s, i, at);
    out[i] = binaryInt(op, a[at[0]], b[at[1]]);
  });
}

void boolRun(BinaryOp op, const Strides& s, int64_t n, uint8_t* out, const uint8_t* a, const uint8_t* b) {
  forEach("binary", n, [=] DEEPNODE_HD(int64_t i) {
    int64_t at[2];
    offsetsOf(s, i, at);
    out[i] = binaryBool(op, a[at[0]], b[at[1]]);
  });
}

// Integer division by zero and negative integer powers are errors of the op.
void checkIntegerDivisor(const KernelCall& call, BinaryOp op, const Buffer& b, int64_t outNumel) {
  const bool division = op == BinaryOp::FloorDiv || op == BinaryOp::Remainder;
  if (outNumel == 0 || b.size == 0 || (!division && op != BinaryOp::Pow)) return;
  const int32_t* divisors = b.as<int32_t>();
  red::checkEach(
      "binary_check", b.size, [=] DEEPNODE_HD(int64_t i) { return division ? divisors[i] == 0 : divisors[i] < 0; },
      [=] DEEPNODE_HD(int64_t i) { return static_cast<long long>(divisors[i]); },
      red::failureOf(call, [division, name = call.string("op")](const KernelCall&, int64_t) {
        failIntegerDivisor(name, division);
      }));
}

void binaryDispatch(BinaryOp op, const Strides& s, int64_t n, const Buffer& out, const Buffer& a, const Buffer& b) {
  if (isComparison(op)) {
    switch (a.dtype) {
      case DType::Float32: return compareRun(op, s, n, out.as<uint8_t>(), a.as<float>(), b.as<float>());
      case DType::Int32: return compareRun(op, s, n, out.as<uint8_t>(), a.as<int32_t>(), b.as<int32_t>());
      default: return compareRun(op, s, n, out.as<uint8_t>(), a.as<uint8_t>(), b.as<uint8_t>());
    }
  }
  switch (a.dtype) {
    case DType::Float32: return floatRun(op, s, n, out.as<float>(), a.as<float>(), b.as<float>());
    case DType::Int32: return intRun(op, s, n, out.as<int32_t>(), a.as<int32_t>(), b.as<int32_t>());
    default: return boolRun(op, s, n, out.as<uint8_t>(), a.as<uint8_t>(), b.as<uint8_t>());
  }
}

void binary(KernelCall& call) {
  BinaryArgs args = readBinaryArgs(call, "cuda");
  const Buffer& out = call.buffers[0];
  const Buffer& a = call.buffers[1];
  const Buffer& b = call.buffers[2];
  const int64_t n = numel(args.outShape);
  if (a.dtype == DType::Int32) checkIntegerDivisor(call, args.op, b, n);
  if (n == 0) return;
  binaryDispatch(args.op, planBroadcast(call, args.outShape, {args.aShape, args.bShape}), n, out, a, b);
}

}  // namespace elementwise

void registerBinaryKernels(KernelTable& table) {
  table["binary"] = elementwise::binary;
}

}  // namespace deepnode::cuda
