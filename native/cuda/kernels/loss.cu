// The negative log-likelihood loss and its backward on CUDA, with the cpu kernel's
// buffers, attributes and checks. Every target is checked on the device before anything
// is written (the first bad one is read back for the IndexError); the 'sum' and 'mean'
// reductions and the total weight are chunked double sums merged in order.
#include <cstdint>
#include <string>

#include "reductions.h"

namespace deepnode::cuda {
namespace red_loss {

using namespace red;

enum class Reduction { None, Sum, Mean };

struct NllArgs {
  int64_t n, c, inner, ignoreIndex;
  Reduction reduction;
  const int32_t* targets;
  const float* weight;  // null when no class weights were given
  DEEPNODE_HD int64_t count() const { return n * inner; }
  DEEPNODE_HD float weightOf(int32_t t) const { return weight ? weight[t] : 1.0f; }
  DEEPNODE_HD bool ignored(int32_t t) const { return t == ignoreIndex; }
  // Offset of element k's target class in [n, c, inner].
  DEEPNODE_HD int64_t targetOffset(int64_t k, int32_t t) const { return (k / inner * c + t) * inner + k % inner; }
};

Reduction parseReduction(const KernelCall& call) {
  std::string reduction = call.string("reduction");
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "mean") return Reduction::Mean;
  if (reduction != "none") call.fail("ERR_VALUE", "unknown reduction '" + reduction + "'");
  return Reduction::None;
}

// Fails with ERR_INDEX naming the first target that is neither ignored nor a class.
void checkTargets(const KernelCall& call, const NllArgs& a) {
  const NllArgs args = a;
  int64_t k = firstBad("nll_loss_check", a.count(), [=] DEEPNODE_HD(int64_t i) {
    const int32_t t = args.targets[i];
    return !args.ignored(t) && (t < 0 || t >= args.c);
  });
  if (k < 0) return;
  call.fail("ERR_INDEX", "target " + std::to_string(readBack(a.targets + k)) + " is out of bounds for " +
                             std::to_string(a.c) + " classes");
}

// Reads and checks everything nll_loss and its backward share: sizes, reduction, targets.
NllArgs readNllArgs(const KernelCall& call) {
  NllArgs a{call.integer("n"),
            call.integer("c"),
            call.integer("inner"),
            call.integer("ignoreIndex"),
            parseReduction(call),
            nullptr,
            nullptr};
  int64_t ni = 0, total = 0;  // total: elements of [n, c, inner], checked to fit
  if (a.n < 0 || a.c < 0 || a.inner < 0 || __builtin_mul_overflow(a.n, a.inner, &ni) ||
      __builtin_mul_overflow(ni, a.c, &total)) {
    call.fail("ERR_SHAPE", "n, c and inner must be non-negative and not too large");
  }
  a.targets = call.buffer(2, "targets", DType::Int32).as<int32_t>();
  call.expectSize(2, "targets", ni);
  if (call.hasBuffer(3)) {
    a.weight = call.buffer(3, "weight", DType::Float32).as<float>();
    call.expectSize(3, "weight", a.c);
  }
  checkTargets(call, a);
  return a;
}

// out[k] = -w[t] * logProbs[t] per element (0 where ignored).
void lossPerElement(const NllArgs& a, float* out, const float* logProbs) {
  forEach("nll_loss", a.count(), [=] DEEPNODE_HD(int64_t k) {
    const int32_t t = a.targets[k];
    out[k] = a.ignored(t) ? 0.0f : -a.weightOf(t) * logProbs[a.targetOffset(k, t)];
  });
}

// out[0] = the sum of -w[t] * logProbs[t], divided by the total weight for 'mean' (NaN when
// every element is ignored).
void lossReduced(const NllArgs& a, float* out, const float* logProbs) {
  const bool mean = a.reduction == Reduction::Mean;
  segmentedReduce<SumTwo>(
      "nll_loss", 1, a.count(),
      [=] DEEPNODE_HD(int64_t, int64_t k) {
        const int32_t t = a.targets[k];
        if (a.ignored(t)) return TwoSums{0, 0};
        const double w = a.weightOf(t);
        return TwoSums{-w * logProbs[a.targetOffset(k, t)], w};
      },
      [=] DEEPNODE_HD(int64_t, TwoSums s) { out[0] = static_cast<float>(mean ? s.a / s.b : s.a); });
}

// *total = the weight of the counted elements, in double.
void totalWeight(const NllArgs& a, double* total) {
  segmentedReduce<SumDouble>(
      "nll_loss_backward", 1, a.count(),
      [=] DEEPNODE_HD(int64_t, int64_t k) {
        const int32_t t = a.targets[k];
        return a.ignored(t) ? 0.0 : static_cast<double>(a.weightOf(t));
      },
      [=] DEEPNODE_HD(int64_t, double s) { *total = s; });
}

// g at each counted target = -w[t] * gradOut / total (total null: not divided).
void scatterGradient(const NllArgs& a, float* g, const float* gradOut, const double* total) {
  const bool perElement = a.reduction == Reduction::None;
  forEach("nll_loss_backward", a.count(), [=] DEEPNODE_HD(int64_t k) {
    const int32_t t = a.targets[k];
    if (a.ignored(t)) return;
    const double scale = total ? 1.0 / *total : 1.0;
    const double upstream = perElement ? gradOut[k] : gradOut[0];
    g[a.targetOffset(k, t)] = static_cast<float>(-a.weightOf(t) * upstream * scale);
  });
}

void nllLoss(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Float32);
  const float* logProbs = call.buffer(1, "logProbs", DType::Float32).as<float>();
  NllArgs a = readNllArgs(call);
  call.expectSize(1, "logProbs", a.count() * a.c);
  call.expectSize(0, "out", a.reduction == Reduction::None ? a.count() : 1);
  if (a.reduction == Reduction::None) return lossPerElement(a, out.as<float>(), logProbs);
  lossReduced(a, out.as<float>(), logProbs);
}

// gradLogProbs is fully written: zero except at each counted target.
void nllLossBackward(KernelCall& call) {
  const Buffer& gradLogProbs = call.buffer(0, "gradLogProbs", DType::Float32);
  const float* gradOut = call.buffer(1, "gradOut", DType::Float32).as<float>();
  NllArgs a = readNllArgs(call);
  call.expectSize(0, "gradLogProbs", a.count() * a.c);
  call.expectSize(1, "gradOut", a.reduction == Reduction::None ? a.count() : 1);
  float* g = gradLogProbs.as<float>();
  fillZeroAsync(g, static_cast<size_t>(a.count() * a.c) * sizeof(float));
  if (a.reduction != Reduction::Mean) return scatterGradient(a, g, gradOut, nullptr);
  Scratch total(sizeof(double));
  totalWeight(a, total.as<double>());
  scatterGradient(a, g, gradOut, total.as<double>());
}

}  // namespace red_loss

void registerLossKernels(KernelTable& table) {
  table["nll_loss"] = red_loss::nllLoss;
  table["nll_loss_backward"] = red_loss::nllLossBackward;
}

}  // namespace deepnode::cuda
