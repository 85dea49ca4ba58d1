// CTC loss for float32 log-probabilities [T, N, C], computed in double: the forward alpha
// recursion in log space per sample (alpha is kept, float64 [N, T, 2S + 1]); the backward runs
// beta and writes the exact derivative with respect to the log-probabilities. Threads take
// whole samples. Every length and label is checked before any thread starts.
#include "../core/args/ctc.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double logAddExp(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  return std::max(a, b) + std::log1p(std::exp(-std::fabs(a - b)));
}

using args::CtcGeometry;

void checkSample(const KernelCall& call, const CtcGeometry& g, int64_t n) {
  int64_t targetLength = g.targetLengths[n];
  args::checkSampleLengths(call, g, n, g.inputLengths[n], targetLength);
  for (int64_t k = 0; k < targetLength; ++k) args::checkSampleLabel(call, g, n, g.targets[n * g.maxTarget + k]);
}

// Reads sizes, checks the input buffers at `first` (logProbs, targets, inputLengths,
// targetLengths) and every sample's lengths and labels.
CtcGeometry readGeometry(const KernelCall& call, size_t first) {
  CtcGeometry g = args::readCtcGeometry(call, first);
  for (int64_t n = 0; n < g.batch; ++n) checkSample(call, g, n);
  return g;
}

// One sample: its extended labels l' (blanks between and around the targets).
struct Sample {
  const CtcGeometry& g;
  int64_t n, steps, length;
  int64_t label(int64_t s) const { return s % 2 == 0 ? g.blank : g.targets[n * g.maxTarget + (s - 1) / 2]; }
  double lp(int64_t t, int64_t k) const { return g.logProbs[(t * g.batch + n) * g.classes + k]; }
  bool canSkip(int64_t s) const { return s >= 2 && s % 2 == 1 && label(s) != label(s - 2); }
};

Sample sampleOf(const CtcGeometry& g, int64_t n) {
  return {g, n, g.inputLengths[n], 2 * g.targetLengths[n] + 1};
}

// alpha [steps, width] (pre-filled with -inf); returns the negative log-likelihood.
double forwardSample(const Sample& s, double* alpha, int64_t width) {
  alpha[0] = s.lp(0, s.label(0));
  if (s.length > 1) alpha[1] = s.lp(0, s.label(1));
  for (int64_t t = 1; t < s.steps; ++t) {
    const double* prev = alpha + (t - 1) * width;
    double* cur = alpha + t * width;
    for (int64_t i = 0; i < s.length; ++i) {
      double sum = prev[i];
      if (i >= 1) sum = logAddExp(sum, prev[i - 1]);
      if (s.canSkip(i)) sum = logAddExp(sum, prev[i - 2]);
      cur[i] = sum == kNegInf ? kNegInf : sum + s.lp(t, s.label(i));
    }
  }
  const double* last = alpha + (s.steps - 1) * width;
  double total = s.length > 1 ? logAddExp(last[s.length - 1], last[s.length - 2]) : last[0];
  return -total;
}

void backwardBeta(const Sample& s, double* beta, int64_t width) {
  double* end = beta + (s.steps - 1) * width;
  end[s.length - 1] = s.lp(s.steps - 1, s.label(s.length - 1));
  if (s.length > 1) end[s.length - 2] = s.lp(s.steps - 1, s.label(s.length - 2));
  for (int64_t t = s.steps - 2; t >= 0; --t) {
    const double* next = beta + (t + 1) * width;
    double* cur = beta + t * width;
    for (int64_t i = 0; i < s.length; ++i) {
      double sum = next[i];
      if (i + 1 < s.length) sum = logAddExp(sum, next[i + 1]);
      if (i + 2 < s.length && s.canSkip(i + 2)) sum = logAddExp(sum, next[i + 2]);
      cur[i] = sum == kNegInf ? kNegInf : sum + s.lp(t, s.label(i));
    }
  }
}

// grad[t, n, k] = -scale * exp(logsumexp_{s: l'(s) = k}(alpha + beta) + nll - lp[t, k]).
void sampleGradient(const Sample& s, const double* alpha, double nll, double scale, float* grad) {
  const CtcGeometry& g = s.g;
  std::vector<double> beta(static_cast<size_t>(s.steps * g.width), kNegInf);
  backwardBeta(s, beta.data(), g.width);
  std::vector<double> lcab(static_cast<size_t>(g.classes));
  std::vector<char> onPath(static_cast<size_t>(g.classes));
  for (int64_t t = 0; t < s.steps; ++t) {
    std::fill(lcab.begin(), lcab.end(), kNegInf);
    std::fill(onPath.begin(), onPath.end(), 0);
    for (int64_t i = 0; i < s.length; ++i) {
      int64_t k = s.label(i);
      lcab[k] = logAddExp(lcab[k], alpha[t * g.width + i] + beta[t * g.width + i]);
      onPath[k] = 1;
    }
    float* row = grad + (t * g.batch + s.n) * g.classes;
    for (int64_t k = 0; k < g.classes; ++k) {
      if (onPath[k]) row[k] = static_cast<float>(-scale * std::exp(lcab[k] + nll - s.lp(t, k)));
    }
  }
}

}  // namespace

void ctcLoss(KernelCall& call) {
  CtcGeometry g = readGeometry(call, 2);
  args::expectCtcLossOutputs(call, g);
  float* loss = call.buffers[0].as<float>();
  double* logAlpha = call.buffers[1].as<double>();
  parallelFor(g.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      double* alpha = logAlpha + n * g.steps * g.width;
      std::fill(alpha, alpha + g.steps * g.width, kNegInf);
      loss[n] = static_cast<float>(forwardSample(sampleOf(g, n), alpha, g.width));
    }
  });
}

void ctcLossBackward(KernelCall& call) {
  CtcGeometry g = readGeometry(call, 2);
  args::expectCtcBackwardBuffers(call, g);
  float* grad = call.buffers[0].as<float>();
  const float* gradLoss = call.buffers[1].as<float>();
  const double* logAlpha = call.buffers[6].as<double>();
  const float* loss = call.buffers[7].as<float>();
  bool zeroInfinity = call.flag("zeroInfinity", false);
  std::fill(grad, grad + g.steps * g.batch * g.classes, 0.0f);
  parallelFor(g.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      double nll = loss[n];
      if (zeroInfinity && std::isinf(nll) && nll > 0) continue;
      sampleGradient(sampleOf(g, n), logAlpha + n * g.steps * g.width, nll, gradLoss[n], grad);
    }
  });
}

}  // namespace deepnode::cpu
