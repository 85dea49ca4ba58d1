// The multi-tensor kernels of gradient clipping (PyTorch's foreach norm and foreach mul), read
// the same way by the cpu and the cuda kernels. float32 or float64, one dtype for every buffer.
// - norms: buffers [out, x0, ..., x(count-1)], attributes count and normType (> 0 or Infinity);
//   out[k] = the normType-norm of xk, (sum |x|^p)^(1/p) or max |x| (a NaN wins), accumulated in
//   double and rounded once. An empty xk has norm 0.
// - scale_in_place: buffers [x0, ..., x(count-1), factor], attribute count; every xk *= factor[0]
//   (factor holds one element), one rounding in the dtype. On cuda factor stays on the device,
//   so nothing waits for it. With attribute maxNorm, factor holds a total norm and the
//   multiplier is clipFactor(norm, maxNorm): gradient clipping's scaling in one call.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "../hd.h"
#include "../kernel.h"
#include "optim.h"
#include "reduce.h"

namespace deepnode::args {

// p = 1, 2 and Infinity have loops of their own (the cpu ones vectorise); any other p > 0 adds
// up |x|^p.
enum class NormKind { One, Two, Max, Power };

struct NormOrder {
  NormKind kind;
  double p;
};

inline NormOrder readNormOrder(const KernelCall& call) {
  const double p = call.number("normType");
  if (p == INFINITY) return {NormKind::Max, p};
  if (!(p > 0) || !std::isfinite(p)) call.fail("ERR_VALUE", "normType must be > 0 or Infinity, got " + numberText(p));
  if (p == 1) return {NormKind::One, p};
  if (p == 2) return {NormKind::Two, p};
  return {NormKind::Power, p};
}

// What element x gives the accumulator of a norm of kind K, in double: |x|, x^2 or |x|^p.
template <NormKind K, typename T>
DEEPNODE_HD inline double normTerm(T x, double p) {
  const double a = fabs(static_cast<double>(x));
  if constexpr (K == NormKind::Two)
    return a * a;
  else if constexpr (K == NormKind::Power)
    return pow(a, p);
  else
    return a;
}

// The accumulators (for the cpu lanes and red::segmentedReduce alike): a sum of the terms
// (SumDouble), or the largest, a NaN kept once met (NormMax). Terms are never negative, so 0
// is the identity of both.
struct NormMax {
  using Acc = double;
  static DEEPNODE_HD Acc init() { return 0; }
  // | rather than ||: branch-free, so the cpu lanes vectorise.
  static DEEPNODE_HD Acc add(Acc acc, double term) { return ((term > acc) | (term != term)) ? term : acc; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return add(a, b); }
};

template <NormKind K>
using NormAccumulator = std::conditional_t<K == NormKind::Max, NormMax, SumDouble>;

// The norm from its accumulator, still in double.
template <NormKind K>
DEEPNODE_HD inline double normFinish(double acc, double p) {
  if constexpr (K == NormKind::Two)
    return sqrt(acc);
  else if constexpr (K == NormKind::Power)
    return pow(acc, 1.0 / p);
  else
    return acc;
}

// One tensor of norms or scale_in_place: its elements (null when it has none).
struct ForeachItem {
  void* data;
  int64_t size;
};

// The dtype of buffer `index`, which must be float32 or float64.
inline DType foreachDType(const KernelCall& call, size_t index, const char* role) {
  const Buffer& b = call.buffer(index, role);
  if (b.dtype != DType::Float32 && b.dtype != DType::Float64) {
    call.fail("ERR_DTYPE", std::string("buffer '") + role + "' must be float32 or float64, got " + dtypeName(b.dtype));
  }
  return b.dtype;
}

// The items from buffer `first` on, one buffer each, every one of `dtype`.
inline std::vector<ForeachItem> readForeachItems(const KernelCall& call, DType dtype, size_t first) {
  return readItems<ForeachItem>(
      call, 1,
      [&](size_t index) {
        const Buffer& x = call.buffer(index, "x", dtype);
        return ForeachItem{x.data, x.size};
      },
      first, 1);
}

struct NormsArgs {
  NormOrder order;
  DType dtype;
  void* out;  // [count]
  std::vector<ForeachItem> items;
};

inline NormsArgs readNorms(const KernelCall& call) {
  NormsArgs a{readNormOrder(call), foreachDType(call, 0, "out"), call.buffers[0].data, {}};
  a.items = readForeachItems(call, a.dtype, 1);
  call.expectSize(0, "out", static_cast<int64_t>(a.items.size()));
  return a;
}

// Gradient clipping's multiplier for a total norm, PyTorch's min(1, maxNorm / (norm + 1e-6))
// in T's arithmetic, and 1 (no change) for a NaN or infinite norm, as lib/optim/clip.ts says.
// PyTorch's scalar / tensor is the tensor's reciprocal times the scalar (Tensor.__rtruediv__),
// two roundings: a division instead differs from it in the last bit for about a quarter of
// the norms when maxNorm is not a power of two.
template <typename T>
DEEPNODE_HD inline T clipFactor(T norm, double maxNorm) {
  if (!(norm - norm == T(0))) return T(1);
  const T factor = T(1) / (norm + static_cast<T>(1e-6)) * static_cast<T>(maxNorm);
  return factor < T(1) ? factor : T(1);
}

struct ScaleArgs {
  DType dtype;
  const void* factor;  // one element: the multiplier, or the norm when clipping
  bool clip;
  double maxNorm;  // when clip
  std::vector<ForeachItem> items;
};

inline ScaleArgs readScale(const KernelCall& call) {
  const size_t last = call.buffers.empty() ? 0 : call.buffers.size() - 1;
  // Clipping is asked for by the attribute being there: a NaN maxNorm is refused, not taken
  // for its absence (which multiplied by the norm).
  const bool clip = call.has("maxNorm");
  const double maxNorm = clip ? call.number("maxNorm") : 0;
  ScaleArgs a{foreachDType(call, last, "factor"), call.buffers[last].data, clip, maxNorm, {}};
  if (clip && !(maxNorm >= 0 && std::isfinite(maxNorm)))
    call.fail("ERR_VALUE", "maxNorm must be finite and >= 0, got " + numberText(maxNorm));
  call.expectSize(last, "factor", 1);
  a.items = readForeachItems(call, a.dtype, 0);
  // On cuda every element reads the factor while others are scaled: it must not be one.
  for (size_t k = 0; k < a.items.size(); ++k) {
    if (a.items[k].data != nullptr && a.items[k].data == a.factor)
      call.fail("ERR_VALUE", "item " + std::to_string(k) + ": the factor must not be one of the tensors it scales");
  }
  return a;
}

// Calls run(T()) with T the C++ type of `dtype` (float32 or float64).
template <typename Run>
void byFloatDType(DType dtype, Run run) {
  if (dtype == DType::Float64)
    run(double());
  else
    run(float());
}

// Calls run(kind, T()) with kind a std::integral_constant of `kind` and T the C++ type of
// `dtype` (float32 or float64).
template <typename Run>
void dispatchNorm(NormKind kind, DType dtype, Run run) {
  auto typed = [&](auto k) { byFloatDType(dtype, [&](auto zero) { run(k, zero); }); };
  switch (kind) {
    case NormKind::One: return typed(std::integral_constant<NormKind, NormKind::One>{});
    case NormKind::Two: return typed(std::integral_constant<NormKind, NormKind::Two>{});
    case NormKind::Max: return typed(std::integral_constant<NormKind, NormKind::Max>{});
    case NormKind::Power: return typed(std::integral_constant<NormKind, NormKind::Power>{});
  }
}

}  // namespace deepnode::args
