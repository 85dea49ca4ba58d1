// CTC loss for float32 log-probabilities [T, N, C] on CUDA, computed in double as the cpu
// kernel does: the forward alpha recursion in log space (alpha is kept, float64 [N, T,
// 2S + 1]), one launch per time step over every (sample, extended label); the backward
// runs beta the same way and writes the exact derivative with respect to the
// log-probabilities, one thread per (t, n, class). Lengths and labels are checked on the
// device first; the first bad sample is read back for the cpu kernel's message.
#include <math.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../../core/args/ctc.h"
#include "reductions.h"

namespace deepnode::cuda {
namespace red_ctc {

using namespace red;

DEEPNODE_HD inline double logAddExp(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  return (a < b ? b : a) + ::log1p(::exp(-::fabs(a - b)));
}

// The shared geometry with what the device needs of it.
struct CtcGeometry : args::CtcGeometry {
  // Sample n's extended labels l' (blanks between and around the targets).
  DEEPNODE_HD int64_t label(int64_t n, int64_t s) const {
    return s % 2 == 0 ? blank : targets[n * maxTarget + (s - 1) / 2];
  }
  DEEPNODE_HD double lp(int64_t t, int64_t n, int64_t k) const { return logProbs[(t * batch + n) * classes + k]; }
  DEEPNODE_HD bool canSkip(int64_t n, int64_t s) const {
    return s >= 2 && s % 2 == 1 && label(n, s) != label(n, s - 2);
  }
  DEEPNODE_HD int64_t stepsOf(int64_t n) const { return inputLengths[n]; }
  DEEPNODE_HD int64_t lengthOf(int64_t n) const { return 2 * static_cast<int64_t>(targetLengths[n]) + 1; }
  // Whether sample n's lengths or labels are out of range.
  DEEPNODE_HD bool badSample(int64_t n) const {
    const int64_t inputLength = inputLengths[n], targetLength = targetLengths[n];
    if (inputLength < 1 || inputLength > steps || targetLength < 0 || targetLength > maxTarget) return true;
    for (int64_t k = 0; k < targetLength; ++k) {
      const int64_t l = targets[n * maxTarget + k];
      if (l < 0 || l >= classes || l == blank) return true;
    }
    return false;
  }
};

// The cpu kernel's error for sample n, from its lengths and labels read back to the host.
void failSample(const KernelCall& call, const CtcGeometry& g, int64_t n) {
  const int64_t inputLength = readBack(g.inputLengths + n), targetLength = readBack(g.targetLengths + n);
  args::checkSampleLengths(call, g, n, inputLength, targetLength);
  std::vector<int32_t> labels(static_cast<size_t>(targetLength));
  if (targetLength > 0) copyToHostNow(labels.data(), g.targets + n * g.maxTarget, labels.size() * sizeof(int32_t));
  for (int64_t label : labels) args::checkSampleLabel(call, g, n, label);
}

void checkSamples(const KernelCall& call, const CtcGeometry& g) {
  const CtcGeometry geometry = g;
  int64_t n = firstBad("ctc_check", g.batch, [=] DEEPNODE_HD(int64_t i) { return geometry.badSample(i); });
  if (n >= 0) failSample(call, g, n);
}

// Reads sizes, checks the input buffers at `first` (logProbs, targets, inputLengths,
// targetLengths) and every sample's lengths and labels.
CtcGeometry readGeometry(const KernelCall& call, size_t first) {
  CtcGeometry g{args::readCtcGeometry(call, first)};
  checkSamples(call, g);
  return g;
}

void fillNegInf(double* data, int64_t n) {
  forEach("ctc_fill", n, [=] DEEPNODE_HD(int64_t k) { data[k] = -INFINITY; });
}

// alpha [N, T, W] (all -inf on entry); loss[n] = the negative log-likelihood.
void forwardAlpha(const CtcGeometry& g, double* alpha, float* loss) {
  const int64_t T = g.steps, W = g.width;
  forEach("ctc_loss", g.batch, [=] DEEPNODE_HD(int64_t n) {
    double* a = alpha + n * T * W;
    a[0] = g.lp(0, n, g.label(n, 0));
    if (g.lengthOf(n) > 1) a[1] = g.lp(0, n, g.label(n, 1));
  });
  for (int64_t t = 1; t < T; ++t) {
    forEach("ctc_loss", g.batch * W, [=] DEEPNODE_HD(int64_t task) {
      const int64_t n = task / W, i = task % W;
      if (t >= g.stepsOf(n) || i >= g.lengthOf(n)) return;
      const double* prev = alpha + (n * T + t - 1) * W;
      double sum = prev[i];
      if (i >= 1) sum = logAddExp(sum, prev[i - 1]);
      if (g.canSkip(n, i)) sum = logAddExp(sum, prev[i - 2]);
      alpha[(n * T + t) * W + i] = sum == -INFINITY ? -INFINITY : sum + g.lp(t, n, g.label(n, i));
    });
  }
  forEach("ctc_loss", g.batch, [=] DEEPNODE_HD(int64_t n) {
    const double* last = alpha + (n * T + g.stepsOf(n) - 1) * W;
    const int64_t length = g.lengthOf(n);
    const double total = length > 1 ? logAddExp(last[length - 1], last[length - 2]) : last[0];
    loss[n] = static_cast<float>(-total);
  });
}

// beta [N, T, W] (all -inf on entry), from each sample's last step back to 0.
void backwardBeta(const CtcGeometry& g, double* beta) {
  const int64_t T = g.steps, W = g.width;
  forEach("ctc_loss_backward", g.batch, [=] DEEPNODE_HD(int64_t n) {
    const int64_t last = g.stepsOf(n) - 1, length = g.lengthOf(n);
    double* end = beta + (n * T + last) * W;
    end[length - 1] = g.lp(last, n, g.label(n, length - 1));
    if (length > 1) end[length - 2] = g.lp(last, n, g.label(n, length - 2));
  });
  for (int64_t t = T - 2; t >= 0; --t) {
    forEach("ctc_loss_backward", g.batch * W, [=] DEEPNODE_HD(int64_t task) {
      const int64_t n = task / W, i = task % W, length = g.lengthOf(n);
      if (t > g.stepsOf(n) - 2 || i >= length) return;
      const double* next = beta + (n * T + t + 1) * W;
      double sum = next[i];
      if (i + 1 < length) sum = logAddExp(sum, next[i + 1]);
      if (i + 2 < length && g.canSkip(n, i + 2)) sum = logAddExp(sum, next[i + 2]);
      beta[(n * T + t) * W + i] = sum == -INFINITY ? -INFINITY : sum + g.lp(t, n, g.label(n, i));
    });
  }
}

struct GradientArgs {
  const double *alpha, *beta;
  const float *loss, *gradLoss;
  bool zeroInfinity;
};

// grad[t, n, k] = -gradLoss[n] * exp(logsumexp_{s: l'(s) = k}(alpha + beta) + nll - lp[t, k])
// for the classes on sample n's path; grad is zero elsewhere (filled before).
void writeGradient(const CtcGeometry& g, const GradientArgs& a, float* grad) {
  const int64_t T = g.steps, W = g.width, N = g.batch, C = g.classes;
  forEach("ctc_loss_backward", T * N * C, [=] DEEPNODE_HD(int64_t task) {
    const int64_t t = task / (N * C), n = task / C % N, k = task % C;
    const double nll = a.loss[n];
    if (t >= g.stepsOf(n) || (a.zeroInfinity && nll == INFINITY)) return;
    const int64_t row = (n * T + t) * W, length = g.lengthOf(n);
    double lcab = -INFINITY;
    bool onPath = false;
    for (int64_t s = k == g.blank ? 0 : 1; s < length; s += 2) {
      if (g.label(n, s) != k) continue;
      lcab = logAddExp(lcab, a.alpha[row + s] + a.beta[row + s]);
      onPath = true;
    }
    if (onPath)
      grad[task] = static_cast<float>(-static_cast<double>(a.gradLoss[n]) * ::exp(lcab + nll - g.lp(t, n, k)));
  });
}

void ctcLoss(KernelCall& call) {
  CtcGeometry g = readGeometry(call, 2);
  args::expectCtcLossOutputs(call, g);
  if (g.batch == 0) return;
  double* logAlpha = call.buffers[1].as<double>();
  fillNegInf(logAlpha, g.batch * g.steps * g.width);
  forwardAlpha(g, logAlpha, call.buffers[0].as<float>());
}

void ctcLossBackward(KernelCall& call) {
  CtcGeometry g = readGeometry(call, 2);
  args::expectCtcBackwardBuffers(call, g);
  float* grad = call.buffers[0].as<float>();
  fillZeroAsync(grad, static_cast<size_t>(g.steps * g.batch * g.classes) * sizeof(float));
  if (g.batch == 0) return;
  Scratch beta(static_cast<size_t>(g.batch * g.steps * g.width) * sizeof(double));
  fillNegInf(beta.as<double>(), g.batch * g.steps * g.width);
  backwardBeta(g, beta.as<double>());
  GradientArgs a{call.buffers[6].as<double>(), beta.as<double>(), call.buffers[7].as<float>(),
                 call.buffers[1].as<float>(), call.flag("zeroInfinity", false)};
  writeGradient(g, a, grad);
}

}  // namespace red_ctc

void registerCtcKernels(KernelTable& table) {
  table["ctc_loss"] = red_ctc::ctcLoss;
  table["ctc_loss_backward"] = red_ctc::ctcLossBackward;
}

}  // namespace deepnode::cuda
