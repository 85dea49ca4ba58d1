// CTC loss for float32 log-probabilities [T, N, C], computed in double: the forward alpha
// recursion in log space per sample (alpha is kept, float64 [N, T, 2S + 1]); the backward runs
// beta and writes the exact derivative with respect to the log-probabilities. Threads take
// whole samples. Every length and label is checked before any thread starts.
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

struct CtcGeometry {
  int64_t steps, batch, classes, maxTarget, blank, width;
  const float* logProbs;
  const int32_t* targets;
  const int32_t* inputLengths;
  const int32_t* targetLengths;
};

std::string describe(const CtcGeometry& g) {
  return "logProbs " + shapeString({g.steps, g.batch, g.classes}) + ", targets " + shapeString({g.batch, g.maxTarget});
}

void expectBuffer(const KernelCall& call, size_t index, const char* role, DType dtype, int64_t expected,
                  const std::string& context) {
  const Buffer& buf = call.buffer(index, role, dtype);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + context);
  }
}

void checkSample(const KernelCall& call, const CtcGeometry& g, int64_t n) {
  int64_t inputLength = g.inputLengths[n], targetLength = g.targetLengths[n];
  std::string at = "[" + std::to_string(n) + "]";
  if (inputLength < 1 || inputLength > g.steps) {
    call.fail("ERR_VALUE", "inputLengths" + at + " must be in [1, " + std::to_string(g.steps) + "], got " +
                               std::to_string(inputLength));
  }
  if (targetLength < 0 || targetLength > g.maxTarget) {
    call.fail("ERR_VALUE", "targetLengths" + at + " must be in [0, " + std::to_string(g.maxTarget) + "], got " +
                               std::to_string(targetLength));
  }
  for (int64_t k = 0; k < targetLength; ++k) {
    int64_t label = g.targets[n * g.maxTarget + k];
    if (label < 0 || label >= g.classes || label == g.blank) {
      call.fail("ERR_INDEX", "target " + std::to_string(label) + " of sample " + std::to_string(n) +
                                 " must be in [0, " + std::to_string(g.classes) + ") and not the blank " +
                                 std::to_string(g.blank));
    }
  }
}

// Reads sizes, checks the input buffers at `first` (logProbs, targets, inputLengths,
// targetLengths) and every sample's lengths and labels.
CtcGeometry readGeometry(const KernelCall& call, size_t first) {
  CtcGeometry g{call.integer("steps"),
                call.integer("batch"),
                call.integer("classes"),
                call.integer("maxTarget"),
                call.integer("blank"),
                0,
                nullptr,
                nullptr,
                nullptr,
                nullptr};
  std::string context = describe(g);
  if (call.integer("rank", 3) != 3 || call.integer("targetRank", 2) != 2) {
    call.fail("ERR_SHAPE", "expected logProbs [T, N, C] and targets [N, S]: " + context);
  }
  if (g.steps < 1 || g.batch < 0 || g.classes < 1 || g.maxTarget < 0 || g.steps > (1 << 24) ||
      g.maxTarget > (1 << 24) || g.classes > (1 << 24) || g.batch > (1 << 24)) {
    call.fail("ERR_SHAPE", "sizes out of range: " + context);
  }
  if (g.blank < 0 || g.blank >= g.classes) {
    call.fail("ERR_VALUE", "blank must be in [0, " + std::to_string(g.classes) + "), got " + std::to_string(g.blank));
  }
  g.width = 2 * g.maxTarget + 1;
  int64_t rows, lpSize, alphaSize;
  if (__builtin_mul_overflow(g.steps, g.batch, &rows) || __builtin_mul_overflow(rows, g.classes, &lpSize) ||
      __builtin_mul_overflow(rows, g.width, &alphaSize)) {
    call.fail("ERR_SHAPE", "sizes overflow 64-bit element counts: " + context);
  }
  expectBuffer(call, first, "logProbs", DType::Float32, g.steps * g.batch * g.classes, context);
  expectBuffer(call, first + 1, "targets", DType::Int32, g.batch * g.maxTarget, context);
  expectBuffer(call, first + 2, "inputLengths", DType::Int32, g.batch, context);
  expectBuffer(call, first + 3, "targetLengths", DType::Int32, g.batch, context);
  g.logProbs = call.buffers[first].as<float>();
  g.targets = call.buffers[first + 1].as<int32_t>();
  g.inputLengths = call.buffers[first + 2].as<int32_t>();
  g.targetLengths = call.buffers[first + 3].as<int32_t>();
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
  std::string context = describe(g);
  expectBuffer(call, 0, "loss", DType::Float32, g.batch, context);
  expectBuffer(call, 1, "logAlpha", DType::Float64, g.batch * g.steps * g.width, context);
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
  std::string context = describe(g);
  expectBuffer(call, 0, "gradLogProbs", DType::Float32, g.steps * g.batch * g.classes, context);
  expectBuffer(call, 1, "gradLoss", DType::Float32, g.batch, context);
  expectBuffer(call, 6, "logAlpha", DType::Float64, g.batch * g.steps * g.width, context);
  expectBuffer(call, 7, "loss", DType::Float32, g.batch, context);
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
