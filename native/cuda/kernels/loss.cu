// The negative log-likelihood loss and its backward on CUDA, with the cpu kernel's
// buffers, attributes and checks. Every target is checked on the device (checks.h: at once,
// before anything is written, or reported at the next wait, the kernels skipping a bad
// target); the 'sum' and 'mean' reductions and the total weight are chunked double sums
// merged in order.
#include <cstdint>
#include <string>

#include "../../core/args/index.h"
#include "../../core/args/range.h"
#include "reductions.h"

namespace deepnode::cuda {
namespace red_loss {

using namespace red;

using args::NllArgs;
using args::Reduction;

// Fails with ERR_INDEX naming the first target that is neither ignored nor a class.
void checkTargets(const KernelCall& call, const NllArgs& a) {
  const NllArgs nll = a;
  const int64_t classes = a.c;
  checkEach(
      "nll_loss_check", a.count(), [=] DEEPNODE_HD(int64_t i) { return nll.badTarget(nll.targets[i]); },
      [=] DEEPNODE_HD(int64_t i) { return static_cast<long long>(nll.targets[i]); },
      failureOf(call, [classes](const KernelCall& op, int64_t target) { args::failTarget(op, target, classes); }));
}

// out[k] = -w[t] * logProbs[t] per element (0 where ignored).
void lossPerElement(const NllArgs& a, float* out, const float* logProbs) {
  forEach("nll_loss", a.count(), [=] DEEPNODE_HD(int64_t k) {
    const int32_t t = a.targets[k];
    out[k] = !a.counted(t) ? 0.0f : -a.weightOf(t) * logProbs[a.targetOffset(k, t)];
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
        if (!a.counted(t)) return TwoSums{0, 0};
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
        return a.counted(t) ? static_cast<double>(a.weightOf(t)) : 0.0;
      },
      [=] DEEPNODE_HD(int64_t, double s) { *total = s; });
}

// g at each counted target = -w[t] * gradOut / total (total null: not divided).
void scatterGradient(const NllArgs& a, float* g, const float* gradOut, const double* total) {
  const bool perElement = a.reduction == Reduction::None;
  forEach("nll_loss_backward", a.count(), [=] DEEPNODE_HD(int64_t k) {
    const int32_t t = a.targets[k];
    if (!a.counted(t)) return;
    const double scale = total ? 1.0 / *total : 1.0;
    const double upstream = perElement ? gradOut[k] : gradOut[0];
    g[a.targetOffset(k, t)] = static_cast<float>(-a.weightOf(t) * upstream * scale);
  });
}

void nllLoss(KernelCall& call) {
  NllArgs a = args::readNllLoss(call, "out", "logProbs", 1, checkTargets);
  float* out = call.buffers[0].as<float>();
  const float* logProbs = call.buffers[1].as<float>();
  if (a.reduction == Reduction::None) return lossPerElement(a, out, logProbs);
  lossReduced(a, out, logProbs);
}

// gradLogProbs is fully written: zero except at each counted target.
void nllLossBackward(KernelCall& call) {
  NllArgs a = args::readNllLoss(call, "gradLogProbs", "gradOut", 0, checkTargets);
  const float* gradOut = call.buffers[1].as<float>();
  float* g = call.buffers[0].as<float>();
  fillZeroAsync(g, static_cast<size_t>(a.count() * a.c) * sizeof(float));
  if (a.reduction != Reduction::Mean) return scatterGradient(a, g, gradOut, nullptr);
  Scratch total(sizeof(double));
  totalWeight(a, total.as<double>());
  scatterGradient(a, g, gradOut, total.as<double>());
}

// Fails naming the first element of x outside [low, high] (see args/range.h); reported as
// the other checks are.
template <typename T>
void checkRangeOf(const KernelCall& call, const args::range::RangeArgs& a, const T* x, int64_t n) {
  const double low = a.low, high = a.high;
  checkEach(
      "check_range", n, [=] DEEPNODE_HD(int64_t i) { return args::range::outside(x[i], low, high); },
      [=] DEEPNODE_HD(int64_t i) { return static_cast<long long>(i); },
      failureOf(call, [a](const KernelCall&, int64_t element) { args::range::failRange(a, element); }));
}

void checkRange(KernelCall& call) {
  const args::range::RangeArgs a = args::range::readRange(call);
  const Buffer& x = call.buffers[0];
  if (x.dtype == DType::Float32) return checkRangeOf(call, a, x.as<float>(), x.size);
  checkRangeOf(call, a, x.as<double>(), x.size);
}

}  // namespace red_loss

void registerLossKernels(KernelTable& table) {
  table["check_range"] = red_loss::checkRange;
  table["nll_loss"] = red_loss::nllLoss;
  table["nll_loss_backward"] = red_loss::nllLossBackward;
}

}  // namespace deepnode::cuda
