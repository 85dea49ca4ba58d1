// Fused scaled dot-product attention, one head at a time: the head's scores [L, S] are made
// by sgemm into a per-thread buffer, masked (key padding, causal), softmaxed and dropped out
// there, and multiplied into the output, so the [B, L, S] weights a composed attention
// writes (and reads back several times) never reach memory. The backward recomputes them
// the same way. Dropout draws element (b * L + i) * S + j of the key, the number
// F.dropout over the weights [B, L, S] would draw, so both paths drop the same weights.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/args/attention.h"
#include "../core/philox.h"
#include "../core/threadpool.h"
#include "clones.h"
#include "gemm.h"
#include "kernels.h"
#include "random_bits.h"
#include "vec_math.h"

namespace deepnode::cpu {

namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();

using args::attention::Attention;
using args::attention::readAttention;

// Reductions over a row in kLanes independent float accumulators, so that they vectorise
// without -ffast-math (a single accumulator is a chain the compiler must keep in order).
constexpr int64_t kLanes = 16;

DEEPNODE_CLONES float rowMax(const float* __restrict row, int64_t S) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, kMasked);
  int64_t j = 0;
  for (; j + kLanes <= S; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] = row[j + l] > lanes[l] ? row[j + l] : lanes[l];
  }
  float m = kMasked;
  for (; j < S; ++j) m = std::max(m, row[j]);
  for (int64_t l = 0; l < kLanes; ++l) m = std::max(m, lanes[l]);
  return m;
}

// The sum of x[j] * y[j] (y null: of x[j]).
DEEPNODE_CLONES float rowDot(const float* __restrict x, const float* __restrict y, int64_t S) {
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= S; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] += x[j + l] * (y == nullptr ? 1.0f : y[j + l]);
  }
  float sum = 0;
  for (; j < S; ++j) sum += x[j] * (y == nullptr ? 1.0f : y[j]);
  for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// row [S] = softmax(row) where -inf entries are masked; a row with all masked gives zeros.
DEEPNODE_CLONES void softmaxRow(float* __restrict row, int64_t S) {
  const float m = rowMax(row, S);
  if (m == kMasked) {
    std::fill(row, row + S, 0.0f);
    return;
  }
  for (int64_t j = 0; j < S; ++j) row[j] = vec::exp(row[j] - m);
  const float factor = 1.0f / rowDot(row, nullptr, S);
  for (int64_t j = 0; j < S; ++j) row[j] *= factor;
}

// weights [L, S] of head b: softmax(scale * q k^T with masked keys at -inf); with dropout,
// keep [L, S] gets each weight's multiplier (1 / (1 - p) or 0).
void headWeights(const Attention& a, int64_t b, const float* q, const float* k, float* weights, float* keep) {
  if (a.E == 0) {
    std::fill(weights, weights + a.L * a.S, 0.0f);
  } else {
    sgemm(false, true, a.L, a.S, a.E, a.scale, q, a.E, k, a.E, 0.0f, weights, a.S);
  }
  const uint8_t* padding = a.padding == nullptr ? nullptr : a.padding + (b / a.heads) * a.S;
  for (int64_t i = 0; i < a.L; ++i) {
    float* row = weights + i * a.S;
    for (int64_t j = 0; j < a.S; ++j) {
      if ((padding != nullptr && padding[j] != 0) || (a.causal && j > i)) row[j] = kMasked;
    }
    softmaxRow(row, a.S);
  }
  if (!a.dropout) return;
  const float multiplier = static_cast<float>(1.0 / (1.0 - a.p));
  const int64_t first = b * a.L * a.S;
  forEachRandomBits(a.key, first, first + a.L * a.S, [&](int64_t e, uint32_t bits) {
    keep[e - first] = philox::uniformOf(bits) >= a.p ? multiplier : 0.0f;
  });
}

// c = x * y, element by element.
void multiply(float* c, const float* x, const float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) c[i] = x[i] * y[i];
}

}  // namespace

void fusedAttention(KernelCall& call) {
  Attention a = readAttention(call);
  const args::attention::AttentionBuffers io = args::attention::readAttentionBuffers(call, a);
  float* out = io.out;
  const float *q = io.q, *k = io.k, *v = io.v;
  const int64_t area = a.L * a.S;
  parallelFor(a.B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> weights(static_cast<size_t>(area)), keep(a.dropout ? static_cast<size_t>(area) : 0);
    for (int64_t b = begin; b < end; ++b) {
      headWeights(a, b, q + b * a.L * a.E, k + b * a.S * a.E, weights.data(), keep.data());
      if (a.dropout) multiply(weights.data(), weights.data(), keep.data(), area);
      float* o = out + b * a.L * a.Ev;
      if (a.S == 0) {
        std::fill(o, o + a.L * a.Ev, 0.0f);
        continue;
      }
      sgemm(false, false, a.L, a.Ev, a.S, 1.0f, weights.data(), a.S, v + b * a.S * a.Ev, a.Ev, 0.0f, o, a.Ev);
    }
  });
}

namespace {

// The gradients of one head, with the weights P, their multipliers D, the dropped weights
// W = P * D and dW in the four [L, S] buffers of `work`.
void headBackward(const Attention& a, int64_t b, const float* q, const float* k, const float* v, const float* gOut,
                  float* gq, float* gk, float* gv, float* work) {
  const int64_t area = a.L * a.S;
  float *P = work, *D = work + area, *W = work + 2 * area, *dW = work + 3 * area;
  headWeights(a, b, q, k, P, D);
  const float* dropped = P;
  if (a.dropout) {
    multiply(W, P, D, area);
    dropped = W;
  }
  // gv [S, Ev] = W^T gOut; dW [L, S] = gOut v^T.
  sgemm(true, false, a.S, a.Ev, a.L, 1.0f, dropped, a.S, gOut, a.Ev, 0.0f, gv, a.Ev);
  if (a.Ev == 0) {
    std::fill(dW, dW + area, 0.0f);
  } else {
    sgemm(false, true, a.L, a.S, a.Ev, 1.0f, gOut, a.Ev, v, a.Ev, 0.0f, dW, a.S);
  }
  if (a.dropout) multiply(dW, dW, D, area);
  // Softmax's backward in place: dZ = P * (dP - sum(dP * P)).
  for (int64_t i = 0; i < a.L; ++i) {
    const float* p = P + i * a.S;
    float* d = dW + i * a.S;
    const float shift = rowDot(d, p, a.S);
    for (int64_t j = 0; j < a.S; ++j) d[j] = p[j] * (d[j] - shift);
  }
  // gq [L, E] = scale * dZ k; gk [S, E] = scale * dZ^T q.
  sgemm(false, false, a.L, a.E, a.S, a.scale, dW, a.S, k, a.E, 0.0f, gq, a.E);
  sgemm(true, false, a.S, a.E, a.L, a.scale, dW, a.S, q, a.E, 0.0f, gk, a.E);
}

}  // namespace

void fusedAttentionBackward(KernelCall& call) {
  Attention a = readAttention(call);
  const args::attention::AttentionGradBuffers io = args::attention::readAttentionGradBuffers(call, a);
  const int64_t* sizes = io.sizes;
  float *gq = io.gq, *gk = io.gk, *gv = io.gv;
  const float *gOut = io.gOut, *q = io.q, *k = io.k, *v = io.v;
  if (a.L == 0 || a.S == 0) {
    std::fill(gq, gq + sizes[0], 0.0f);
    std::fill(gk, gk + sizes[1], 0.0f);
    std::fill(gv, gv + sizes[2], 0.0f);
    return;
  }
  parallelFor(a.B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> work(static_cast<size_t>(4 * a.L * a.S));
    for (int64_t b = begin; b < end; ++b) {
      headBackward(a, b, q + b * a.L * a.E, k + b * a.S * a.E, v + b * a.S * a.Ev, gOut + b * a.L * a.Ev,
                   gq + b * a.L * a.E, gk + b * a.S * a.E, gv + b * a.S * a.Ev, work.data());
    }
  });
}

}  // namespace deepnode::cpu
