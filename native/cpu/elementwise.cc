// Element-wise kernels: unary maps, binary ops with numpy broadcasting, where, expand
// and permute. Broadcasting is planned once per call: size-1 dims are dropped and dims
// that stay contiguous for every operand are merged, so that the work is a list of rows
// whose operands each either advance (stride 1) or repeat one value (stride 0). The
// per-row loops are simple enough to vectorise and are cloned per ISA (target_clones).
#include "../core/args/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"
#include "vec_erf.h"
#include "vec_math.h"

namespace deepnode::cpu {

namespace {

using namespace deepnode::args;

constexpr int64_t kGrain = 32 * 1024;  // elements per task: below this a loop stays on one thread
constexpr int kMaxOperands = kMaxBroadcastOperands;
constexpr int64_t kShortRun = 16;  // runs shorter than this are done inline
constexpr int kMaxDims = 64;       // after merging, a plan has at most this many dims

// ---------------------------------------------------------------------------------------
// Broadcast planning

// The output shape after dropping size-1 dims and merging contiguous runs, with each
// operand's element stride per dim (0 where it is broadcast). Never empty: a scalar
// output is one dim of size 1.
struct BroadcastPlan {
  Shape shape;
  std::vector<int64_t> strides[kMaxOperands];
  int operands = 0;
  int64_t numel = 0;
};

BroadcastPlan planBroadcast(const Shape& out, const std::vector<Shape>& ins) {
  BroadcastPlan plan;
  plan.operands = static_cast<int>(ins.size());
  plan.numel = numel(out);
  BroadcastDims dims = mergeBroadcastDims(out, ins);
  plan.shape = std::move(dims.shape);
  for (int k = 0; k < plan.operands; ++k) plan.strides[k] = std::move(dims.strides[k]);
  if (plan.shape.empty()) {
    plan.shape.push_back(1);
    for (int k = 0; k < plan.operands; ++k) plan.strides[k].push_back(0);
  }
  return plan;
}

// The plan of operands that all have the output's shape: one contiguous run. What planBroadcast
// gives them, without its vectors: a small same-shape op pays for each allocation.
BroadcastPlan contiguousPlan(int64_t numel, int operands) {
  BroadcastPlan plan;
  plan.operands = operands;
  plan.numel = numel;
  plan.shape.assign(1, numel);
  for (int k = 0; k < operands; ++k) plan.strides[k].assign(1, 1);
  return plan;
}

// The multi-index of the current run over the outer dims, and each operand's offset
// there; stepping it costs a few adds instead of a division per dim, which matters when
// runs are short.
struct RunCursor {
  int64_t index[kMaxDims] = {};
  int64_t offsets[kMaxOperands] = {};

  RunCursor(const BroadcastPlan& plan, int64_t row, int64_t col) {
    for (int d = static_cast<int>(plan.shape.size()) - 2; d >= 0; --d) {
      index[d] = row % plan.shape[d];
      row /= plan.shape[d];
      for (int k = 0; k < plan.operands; ++k) offsets[k] += index[d] * plan.strides[k][d];
    }
    for (int k = 0; k < plan.operands; ++k) offsets[k] += col * plan.strides[k].back();
  }

  // Moves to the start of the next run; `col` is where the finished run began.
  void next(const BroadcastPlan& plan, int64_t col) {
    for (int k = 0; k < plan.operands; ++k) offsets[k] -= col * plan.strides[k].back();
    for (int d = static_cast<int>(plan.shape.size()) - 2; d >= 0; --d) {
      for (int k = 0; k < plan.operands; ++k) offsets[k] += plan.strides[k][d];
      if (++index[d] < plan.shape[d]) return;
      for (int k = 0; k < plan.operands; ++k) offsets[k] -= plan.shape[d] * plan.strides[k][d];
      index[d] = 0;
    }
  }
};

// Calls fn(outOffset, inOffsets, length) for runs of the innermost dim, split across
// threads by element count so one long row is shared too. Within a run operand k
// advances by plan.strides[k].back() (0 or 1) per element.
template <typename RowFn>
void forEachRun(const BroadcastPlan& plan, RowFn&& fn) {
  if (plan.numel == 0) return;
  const int64_t inner = plan.shape.back();
  parallelFor(plan.numel, kGrain, [&](int64_t begin, int64_t end) {
    int64_t col = begin % inner;
    RunCursor cursor(plan, begin / inner, col);
    while (begin < end) {
      int64_t length = std::min(inner - col, end - begin);
      fn(begin, cursor.offsets, length);
      begin += length;
      cursor.next(plan, col);
      col = 0;
    }
  });
}

// ---------------------------------------------------------------------------------------
// Binary ops

// Integer arithmetic wraps modulo 2^bits, as PyTorch's does, without signed overflow.
template <typename T>
T wrap(uint64_t v) {
  return static_cast<T>(static_cast<std::make_unsigned_t<T>>(v));
}

struct AddF {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>)
      return wrap<T>(uint64_t(a) + uint64_t(b));
    else
      return a + b;
  }
};
struct SubF {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>)
      return wrap<T>(uint64_t(a) - uint64_t(b));
    else
      return a - b;
  }
};
struct MulF {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>)
      return wrap<T>(uint64_t(a) * uint64_t(b));
    else
      return a * b;
  }
};
struct DivF {
  template <typename T>
  static T apply(T a, T b) {
    return a / b;
  }
};
// Float pow in double, as the reference computes Math.pow; integer pow by squaring,
// wrapping (negative exponents are rejected before the loop).
struct PowF {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      uint64_t result = 1, base = uint64_t(a);
      for (int64_t e = b; e > 0; e >>= 1) {
        if (e & 1) result = uint32_t(result * base);
        base = uint32_t(base * base);
      }
      return wrap<T>(result);
    } else {
      return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    }
  }
};
// maximum/minimum propagate NaN, as torch.maximum does.
struct MaximumF {
  template <typename T>
  static T apply(T a, T b) {
    return ((a > b) | (a != a)) ? a : b;  // | not ||: branch-free, so it vectorises
  }
};
struct MinimumF {
  template <typename T>
  static T apply(T a, T b) {
    return ((a < b) | (a != a)) ? a : b;
  }
};
// Python floor division; the divisor is checked nonzero beforehand for integers, and
// INT_MIN / -1 wraps instead of trapping.
struct FloorDivF {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      if (b == -1) return wrap<T>(0 - uint64_t(a));
      T q = static_cast<T>(a / b);
      return (a % b != 0 && ((a < 0) != (b < 0))) ? static_cast<T>(q - 1) : q;
    } else {
      // PyTorch's div_floor: from fmod, so infinities and signed zeros come out as there.
      double x = a, y = b;
      if (y == 0) return static_cast<T>(x / y);
      double mod = std::fmod(x, y);
      double q = (x - mod) / y;
      if (mod != 0 && ((y < 0) != (mod < 0))) q -= 1;
      if (q == 0) return static_cast<T>(std::copysign(0.0, x / y));
      double floored = std::floor(q);
      return static_cast<T>(q - floored > 0.5 ? floored + 1 : floored);
    }
  }
};
// Remainder with the divisor's sign, as torch.remainder (fmod, then shifted by b).
struct RemainderF {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      if (b == -1) return 0;
      T r = static_cast<T>(a % b);
      return (r != 0 && ((r < 0) != (b < 0))) ? static_cast<T>(r + b) : r;
    } else {
      double mod = std::fmod(static_cast<double>(a), static_cast<double>(b));
      if (mod != 0 && ((b < 0) != (mod < 0))) mod += b;
      return static_cast<T>(mod);
    }
  }
};
struct EqF {
  template <typename T>
  static uint8_t apply(T a, T b) {
    return a == b;
  }
};
struct NeF {
  template <typename T>
  static uint8_t apply(T a, T b) {
    return a != b;
  }
};
struct LtF {
  template <typename T>
  static uint8_t apply(T a, T b) {
    return a < b;
  }
};
struct LeF {
  template <typename T>
  static uint8_t apply(T a, T b) {
    return a <= b;
  }
};
struct GtF {
  template <typename T>
  static uint8_t apply(T a, T b) {
    return a > b;
  }
};
struct GeF {
  template <typename T>
  static uint8_t apply(T a, T b) {
    return a >= b;
  }
};
// Gradient through relu: a where the input b is positive, else 0 (as PyTorch's threshold_backward).
struct ReluBackwardF {
  template <typename T>
  static T apply(T a, T b) {
    return b > T(0) ? a : T(0);
  }
};
struct SigmoidBackwardF {
  template <typename T>
  static T apply(T a, T b) {
    return a * b * (T(1) - b);
  }
};
struct TanhBackwardF {
  template <typename T>
  static T apply(T a, T b) {
    return a * (T(1) - b * b);
  }
};
// Gradients through GELU (both forms) and SiLU: b is the input. Float only (binarySupports).
struct GeluBackwardF {
  template <typename T>
  static T apply(T a, T b) {
    return static_cast<T>(a * vec::geluGrad(static_cast<float>(b)));
  }
};
struct GeluTanhBackwardF {
  template <typename T>
  static T apply(T a, T b) {
    return static_cast<T>(a * vec::geluTanhGrad(static_cast<float>(b)));
  }
};
struct SiluBackwardF {
  template <typename T>
  static T apply(T a, T b) {
    return static_cast<T>(a * vec::siluGrad(static_cast<float>(b)));
  }
};

// The four shapes of a run: both operands advance, or one of them repeats one value.
template <typename F, typename T, typename R>
DEEPNODE_CLONES void binaryRunVV(R* __restrict out, const T* __restrict a, const T* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F::apply(a[i], b[i]);
}
template <typename F, typename T, typename R>
DEEPNODE_CLONES void binaryRunSV(R* __restrict out, T a, const T* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F::apply(a, b[i]);
}
template <typename F, typename T, typename R>
DEEPNODE_CLONES void binaryRunVS(R* __restrict out, const T* __restrict a, T b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F::apply(a[i], b);
}

// One run of a binary op, choosing the loop by which operands move (stride 1) or repeat.
template <typename F, typename T, typename R>
void binaryRun(R* out, const T* a, const T* b, int64_t n, bool aMoves, bool bMoves) {
  if (n < kShortRun) {  // a call through the ISA dispatcher would cost more than the work
    for (int64_t i = 0; i < n; ++i) out[i] = F::apply(a[aMoves ? i : 0], b[bMoves ? i : 0]);
  } else if (aMoves && bMoves) {
    binaryRunVV<F>(out, a, b, n);
  } else if (bMoves) {
    binaryRunSV<F>(out, a[0], b, n);
  } else if (aMoves) {
    binaryRunVS<F>(out, a, b[0], n);
  } else {
    std::fill(out, out + n, F::apply(a[0], b[0]));
  }
}

// Short innermost runs (e.g. [N, C, 2, 2] + [1, C, 1, 1]) are walked as 2-D blocks of the
// last two dims, one block per row of the outer dims, so the per-run bookkeeping is paid
// once per block instead of once per few elements.
template <typename F, typename T, typename R>
void binaryBlocks(const BroadcastPlan& plan, R* out, const T* a, const T* b) {
  BroadcastPlan outer = plan;
  const int64_t d1 = plan.shape[plan.shape.size() - 2], d0 = plan.shape.back();
  const int64_t a1 = plan.strides[0][plan.shape.size() - 2], b1 = plan.strides[1][plan.shape.size() - 2];
  const bool aMoves = plan.strides[0].back() != 0, bMoves = plan.strides[1].back() != 0;
  outer.shape.pop_back();
  outer.shape.back() = 1;  // the cursor then steps one block per row
  for (int k = 0; k < 2; ++k) outer.strides[k].pop_back();
  const int64_t rows = plan.numel / (d1 * d0);
  parallelFor(rows, std::max<int64_t>(1, kGrain / (d1 * d0)), [&](int64_t begin, int64_t end) {
    RunCursor cursor(outer, begin, 0);
    for (int64_t row = begin; row < end; ++row) {
      R* o = out + row * d1 * d0;
      for (int64_t i = 0; i < d1; ++i) {
        binaryRun<F>(o + i * d0, a + cursor.offsets[0] + i * a1, b + cursor.offsets[1] + i * b1, d0, aMoves, bMoves);
      }
      cursor.next(outer, 0);
    }
  });
}

template <typename F, typename T>
void binaryPlanned(const BroadcastPlan& plan, void* outData, const T* a, const T* b) {
  using R = decltype(F::apply(T(), T()));
  R* out = static_cast<R*>(outData);
  if (plan.numel == 0) return;
  if (plan.shape.back() < kShortRun && plan.shape.size() >= 2) return binaryBlocks<F>(plan, out, a, b);
  const bool aMoves = plan.strides[0].back() != 0, bMoves = plan.strides[1].back() != 0;
  forEachRun(plan, [&](int64_t o, const int64_t* in, int64_t n) {
    binaryRun<F>(out + o, a + in[0], b + in[1], n, aMoves, bMoves);
  });
}

template <typename T>
void binaryDispatch(BinaryOp op, const BroadcastPlan& plan, void* out, const T* a, const T* b) {
  switch (op) {
    case BinaryOp::Add: return binaryPlanned<AddF>(plan, out, a, b);
    case BinaryOp::Sub: return binaryPlanned<SubF>(plan, out, a, b);
    case BinaryOp::Mul: return binaryPlanned<MulF>(plan, out, a, b);
    case BinaryOp::Div: return binaryPlanned<DivF>(plan, out, a, b);
    case BinaryOp::Pow: return binaryPlanned<PowF>(plan, out, a, b);
    case BinaryOp::Maximum: return binaryPlanned<MaximumF>(plan, out, a, b);
    case BinaryOp::Minimum: return binaryPlanned<MinimumF>(plan, out, a, b);
    case BinaryOp::FloorDiv: return binaryPlanned<FloorDivF>(plan, out, a, b);
    case BinaryOp::Remainder: return binaryPlanned<RemainderF>(plan, out, a, b);
    case BinaryOp::Eq: return binaryPlanned<EqF>(plan, out, a, b);
    case BinaryOp::Ne: return binaryPlanned<NeF>(plan, out, a, b);
    case BinaryOp::Lt: return binaryPlanned<LtF>(plan, out, a, b);
    case BinaryOp::Le: return binaryPlanned<LeF>(plan, out, a, b);
    case BinaryOp::Gt: return binaryPlanned<GtF>(plan, out, a, b);
    case BinaryOp::Ge: return binaryPlanned<GeF>(plan, out, a, b);
    case BinaryOp::ReluBackward: return binaryPlanned<ReluBackwardF>(plan, out, a, b);
    case BinaryOp::SigmoidBackward: return binaryPlanned<SigmoidBackwardF>(plan, out, a, b);
    case BinaryOp::TanhBackward: return binaryPlanned<TanhBackwardF>(plan, out, a, b);
    case BinaryOp::GeluBackward: return binaryPlanned<GeluBackwardF>(plan, out, a, b);
    case BinaryOp::GeluTanhBackward: return binaryPlanned<GeluTanhBackwardF>(plan, out, a, b);
    case BinaryOp::SiluBackward: return binaryPlanned<SiluBackwardF>(plan, out, a, b);
  }
}

// Instantiating every op for uint8 would only add dead code, so uint8 gets its own list.
void binaryDispatchBool(BinaryOp op, const BroadcastPlan& plan, void* out, const uint8_t* a, const uint8_t* b) {
  switch (op) {
    case BinaryOp::Mul: return binaryPlanned<MulF>(plan, out, a, b);
    case BinaryOp::Maximum: return binaryPlanned<MaximumF>(plan, out, a, b);
    case BinaryOp::Minimum: return binaryPlanned<MinimumF>(plan, out, a, b);
    case BinaryOp::Eq: return binaryPlanned<EqF>(plan, out, a, b);
    case BinaryOp::Ne: return binaryPlanned<NeF>(plan, out, a, b);
    case BinaryOp::Lt: return binaryPlanned<LtF>(plan, out, a, b);
    case BinaryOp::Le: return binaryPlanned<LeF>(plan, out, a, b);
    case BinaryOp::Gt: return binaryPlanned<GtF>(plan, out, a, b);
    case BinaryOp::Ge: return binaryPlanned<GeF>(plan, out, a, b);
    default: return;
  }
}

// Integer division by zero and negative integer powers are errors, found before any write.
void checkIntegerDivisor(const KernelCall& call, BinaryOp op, const Buffer& b, int64_t outNumel) {
  if (outNumel == 0) return;
  const int32_t* bs = b.as<int32_t>();
  if (op == BinaryOp::FloorDiv || op == BinaryOp::Remainder) {
    if (std::find(bs, bs + b.size, 0) != bs + b.size) failIntegerDivisor(call, true);
  }
  if (op == BinaryOp::Pow) {
    if (std::any_of(bs, bs + b.size, [](int32_t e) { return e < 0; })) failIntegerDivisor(call, false);
  }
}

// ---------------------------------------------------------------------------------------
// Unary ops

// Parameters of affine, pow and clamp. affine computes in double and rounds once to float, as
// the reference does. With alpha and beta floats (as the tensor ops pass a number) alpha * x is
// exact in double, so a fused multiply-add where the compiler contracts one gives the same bits;
// in float, fused, it did not. pow also computes in double.
struct UnaryParams {
  double alpha = 0, beta = 0;
};

template <typename F>
DEEPNODE_CLONES void unaryRun(float* __restrict out, const float* __restrict x, int64_t n, UnaryParams p) {
  for (int64_t i = 0; i < n; ++i) out[i] = F::apply(x[i], p);
}

#define DEEPNODE_UNARY(NAME, EXPR)               \
  struct NAME {                                  \
    static float apply(float x, UnaryParams p) { \
      (void)p;                                   \
      return EXPR;                               \
    }                                            \
  }

DEEPNODE_UNARY(NegU, -x);
DEEPNODE_UNARY(ExpU, vec::exp(x));
DEEPNODE_UNARY(LogU, std::log(x));
DEEPNODE_UNARY(SqrtU, std::sqrt(x));
DEEPNODE_UNARY(AbsU, std::fabs(x));
DEEPNODE_UNARY(SignU, static_cast<float>((0.0f < x) - (x < 0.0f)));  // sign(0) = 0, as PyTorch
DEEPNODE_UNARY(ReluU, x < 0.0f ? 0.0f : x);                          // keeps NaN, as PyTorch
DEEPNODE_UNARY(SigmoidU, vec::sigmoid(x));                           // saturates to 0 and 1 without NaN
DEEPNODE_UNARY(TanhU, vec::tanh(x));
DEEPNODE_UNARY(SquareU, x* x);
DEEPNODE_UNARY(ReciprocalU, 1.0f / x);
DEEPNODE_UNARY(SinU, std::sin(x));
DEEPNODE_UNARY(CosU, std::cos(x));
DEEPNODE_UNARY(FloorU, std::floor(x));
DEEPNODE_UNARY(CeilU, std::ceil(x));
DEEPNODE_UNARY(RoundU, std::nearbyint(x));  // half to even under the default rounding mode
DEEPNODE_UNARY(AffineU, static_cast<float>(p.alpha* static_cast<double>(x) + p.beta));
DEEPNODE_UNARY(PowU, static_cast<float>(std::pow(static_cast<double>(x), p.alpha)));
DEEPNODE_UNARY(SquarePowU, x* x);
// min(max(x, alpha), beta): beta wins when alpha > beta, as in PyTorch; NaN stays NaN.
DEEPNODE_UNARY(ClampU, std::min(std::max(x, static_cast<float>(p.alpha)), static_cast<float>(p.beta)));
DEEPNODE_UNARY(ErfU, vec::erf(x));
DEEPNODE_UNARY(GeluU, vec::gelu(x));
DEEPNODE_UNARY(GeluTanhU, vec::geluTanh(x));
DEEPNODE_UNARY(SiluU, vec::silu(x));

template <typename F>
void unaryParallel(float* out, const float* x, int64_t n, UnaryParams p) {
  parallelFor(n, kGrain, [&](int64_t begin, int64_t end) { unaryRun<F>(out + begin, x + begin, end - begin, p); });
}

void unaryFloat(UnaryOp op, float* out, const float* x, int64_t n, UnaryParams p) {
  switch (op) {
    case UnaryOp::Neg: return unaryParallel<NegU>(out, x, n, p);
    case UnaryOp::Exp: return unaryParallel<ExpU>(out, x, n, p);
    case UnaryOp::Log: return unaryParallel<LogU>(out, x, n, p);
    case UnaryOp::Sqrt: return unaryParallel<SqrtU>(out, x, n, p);
    case UnaryOp::Abs: return unaryParallel<AbsU>(out, x, n, p);
    case UnaryOp::Sign: return unaryParallel<SignU>(out, x, n, p);
    case UnaryOp::Relu: return unaryParallel<ReluU>(out, x, n, p);
    case UnaryOp::Sigmoid: return unaryParallel<SigmoidU>(out, x, n, p);
    case UnaryOp::Tanh: return unaryParallel<TanhU>(out, x, n, p);
    case UnaryOp::Square: return unaryParallel<SquareU>(out, x, n, p);
    case UnaryOp::Reciprocal: return unaryParallel<ReciprocalU>(out, x, n, p);
    case UnaryOp::Sin: return unaryParallel<SinU>(out, x, n, p);
    case UnaryOp::Cos: return unaryParallel<CosU>(out, x, n, p);
    case UnaryOp::Floor: return unaryParallel<FloorU>(out, x, n, p);
    case UnaryOp::Ceil: return unaryParallel<CeilU>(out, x, n, p);
    case UnaryOp::Round: return unaryParallel<RoundU>(out, x, n, p);
    case UnaryOp::Affine: return unaryParallel<AffineU>(out, x, n, p);
    case UnaryOp::Pow:
      if (p.alpha == 2.0) return unaryParallel<SquarePowU>(out, x, n, p);
      return unaryParallel<PowU>(out, x, n, p);
    case UnaryOp::Clamp: return unaryParallel<ClampU>(out, x, n, p);
    case UnaryOp::Erf: return unaryParallel<ErfU>(out, x, n, p);
    case UnaryOp::Gelu: return unaryParallel<GeluU>(out, x, n, p);
    case UnaryOp::GeluTanh: return unaryParallel<GeluTanhU>(out, x, n, p);
    case UnaryOp::Silu: return unaryParallel<SiluU>(out, x, n, p);
  }
}

// int32 affine: exact wrapping arithmetic when alpha and beta are integers, else computed in
// double and truncated toward zero (saturating), as a cast would.
int32_t affineInt(int32_t x, double alpha, double beta, bool integral) {
  if (integral) {
    uint64_t a = static_cast<uint64_t>(static_cast<int64_t>(alpha));
    uint64_t b = static_cast<uint64_t>(static_cast<int64_t>(beta));
    return wrap<int32_t>(a * uint64_t(int64_t(x)) + b);
  }
  double v = std::trunc(alpha * x + beta);
  if (std::isnan(v)) return 0;
  return static_cast<int32_t>(std::max(-2147483648.0, std::min(2147483647.0, v)));
}

void unaryInt(const KernelCall& call, UnaryOp op, int32_t* out, const int32_t* x, int64_t n) {
  double alpha = call.number("alpha", 1), beta = call.number("beta", 0);
  bool integral = affineIsIntegral(alpha, beta);
  parallelFor(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      int32_t v = x[i];
      switch (op) {
        case UnaryOp::Neg: out[i] = wrap<int32_t>(0 - uint64_t(int64_t(v))); break;
        case UnaryOp::Abs: out[i] = v < 0 ? wrap<int32_t>(0 - uint64_t(int64_t(v))) : v; break;
        case UnaryOp::Sign: out[i] = (0 < v) - (v < 0); break;
        case UnaryOp::Square: out[i] = wrap<int32_t>(uint64_t(int64_t(v)) * uint64_t(int64_t(v))); break;
        default: out[i] = affineInt(v, alpha, beta, integral); break;
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// where: copies move any dtype as raw bits (bySize).

template <typename T>
DEEPNODE_CLONES void whereRun(T* __restrict out, const uint8_t* __restrict c, const T* __restrict a,
                              const T* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = c[i] ? a[i] : b[i];
}

template <typename T>
void wherePlanned(const BroadcastPlan& plan, T* out, const uint8_t* c, const T* a, const T* b) {
  const int64_t sc = plan.strides[0].back(), sa = plan.strides[1].back(), sb = plan.strides[2].back();
  forEachRun(plan, [&](int64_t o, const int64_t* in, int64_t n) {
    if (sc && sa && sb) return whereRun(out + o, c + in[0], a + in[1], b + in[2], n);
    const uint8_t* cr = c + in[0];
    const T* ar = a + in[1];
    const T* br = b + in[2];
    for (int64_t i = 0; i < n; ++i) out[o + i] = cr[i * sc] ? ar[i * sa] : br[i * sb];
  });
}

// ---------------------------------------------------------------------------------------
// Permute

// Copies runs where the innermost out dim is also innermost in x.
template <typename T>
void permuteRows(const PermutePlan& plan, T* out, const T* x) {
  const int64_t inner = plan.outShape.back(), rows = numel(plan.outShape) / inner;
  const int dims = static_cast<int>(plan.outShape.size()) - 1;
  parallelFor(rows, std::max<int64_t>(1, kGrain / inner), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t rest = r, offset = 0;
      for (int d = dims - 1; d >= 0; --d) {
        offset += (rest % plan.outShape[d]) * plan.xStride[d];
        rest /= plan.outShape[d];
      }
      std::memcpy(out + r * inner, x + offset, inner * sizeof(T));
    }
  });
}

// Blocked transpose between out's innermost dim (strided in x) and the out dim `j` that
// is innermost in x, with every other dim as an outer loop: tiles keep both the reads
// and the writes within a few cache lines.
template <typename T>
void permuteBlocked(const PermutePlan& plan, int j, T* out, const T* x) {
  constexpr int64_t kTile = 32;
  const int last = static_cast<int>(plan.outShape.size()) - 1;
  const int64_t rowsJ = plan.outShape[j], cols = plan.outShape[last], colStride = plan.xStride[last];
  std::vector<int64_t> outStride(plan.outShape.size(), 1);
  for (int d = last - 1; d >= 0; --d) outStride[d] = outStride[d + 1] * plan.outShape[d + 1];
  const int64_t tilesJ = (rowsJ + kTile - 1) / kTile;
  const int64_t outer = numel(plan.outShape) / (rowsJ * cols);
  const int64_t tileWork = kTile * cols;

  parallelFor(outer * tilesJ, std::max<int64_t>(1, kGrain / tileWork), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t tile = task % tilesJ, rest = task / tilesJ, outBase = 0, xBase = 0;
      for (int d = last - 1; d >= 0; --d) {
        if (d == j) continue;
        int64_t i = rest % plan.outShape[d];
        rest /= plan.outShape[d];
        outBase += i * outStride[d];
        xBase += i * plan.xStride[d];
      }
      int64_t i0 = tile * kTile, i1 = std::min(rowsJ, i0 + kTile);
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
        int64_t c1 = std::min(cols, c0 + kTile);
        for (int64_t i = i0; i < i1; ++i) {
          T* o = out + outBase + i * outStride[j];
          const T* xr = x + xBase + i;
          for (int64_t c = c0; c < c1; ++c) o[c] = xr[c * colStride];
        }
      }
    }
  });
}

template <typename T>
void permuteTyped(const PermutePlan& plan, T* out, const T* x, int64_t n) {
  if (plan.outShape.size() <= 1) {
    std::memcpy(out, x, n * sizeof(T));
    return;
  }
  if (plan.xStride.back() == 1) return permuteRows(plan, out, x);
  int j = 0;
  while (plan.xStride[j] != 1) ++j;
  permuteBlocked(plan, j, out, x);
}

}  // namespace

void unary(KernelCall& call) {
  UnaryOp op = readUnaryArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];

  if (x.dtype == DType::Float32) {
    UnaryParams p{call.number("alpha", 0), call.number("beta", 0)};
    return unaryFloat(op, out.as<float>(), x.as<float>(), x.size, p);
  }
  if (x.dtype == DType::Int32 && unaryHasIntKernel(op)) {
    return unaryInt(call, op, out.as<int32_t>(), x.as<int32_t>(), x.size);
  }
  failUnaryDType(call, x.dtype, "cpu");
}

void binary(KernelCall& call) {
  BinaryArgs args = readBinaryArgs(call, "cpu");
  const Buffer& out = call.buffers[0];
  const Buffer& a = call.buffers[1];
  const Buffer& b = call.buffers[2];
  const BinaryOp op = args.op;
  if (a.dtype == DType::Int32) checkIntegerDivisor(call, op, b, numel(args.outShape));

  const bool sameShapes = args.aShape == args.outShape && args.bShape == args.outShape;
  BroadcastPlan plan =
      sameShapes ? contiguousPlan(numel(args.outShape), 2) : planBroadcast(args.outShape, {args.aShape, args.bShape});
  switch (a.dtype) {
    case DType::Float32: return binaryDispatch(op, plan, out.data, a.as<float>(), b.as<float>());
    case DType::Int32: return binaryDispatch(op, plan, out.data, a.as<int32_t>(), b.as<int32_t>());
    default: return binaryDispatchBool(op, plan, out.data, a.as<uint8_t>(), b.as<uint8_t>());
  }
}

void where(KernelCall& call) {
  WhereArgs args = readWhereArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& cond = call.buffers[1];
  const Buffer& a = call.buffers[2];
  const Buffer& b = call.buffers[3];

  BroadcastPlan plan = planBroadcast(args.outShape, {args.condShape, args.aShape, args.bShape});
  bySize(dtypeSize(a.dtype), [&](auto tag) {
    using T = decltype(tag);
    wherePlanned(plan, out.as<T>(), cond.as<uint8_t>(), a.as<T>(), b.as<T>());
  });
}

void expand(KernelCall& call) {
  ExpandArgs args = readExpandArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];

  BroadcastPlan plan = planBroadcast(args.outShape, {args.xShape});
  const bool moves = plan.strides[0].back() != 0;
  bySize(dtypeSize(x.dtype), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.as<T>();
    const T* xs = x.as<T>();
    forEachRun(plan, [&](int64_t at, const int64_t* in, int64_t n) {
      if (moves)
        std::memcpy(o + at, xs + in[0], n * sizeof(T));
      else
        std::fill(o + at, o + at + n, xs[in[0]]);
    });
  });
}

void permute(KernelCall& call) {
  PermuteArgs args = readPermuteArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];
  if (x.size == 0) return;

  PermutePlan plan = planPermute(args.shape, args.perm);
  bySize(dtypeSize(x.dtype), [&](auto tag) {
    using T = decltype(tag);
    permuteTyped(plan, out.as<T>(), x.as<T>(), x.size);
  });
}

}  // namespace deepnode::cpu
