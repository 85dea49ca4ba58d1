// fused_attention and its backward on CUDA, with the cpu kernels' buffers, attributes and
// checks (native/cpu/fused_attention.cc). The scores of all heads are made by one batched
// cuBLAS GEMM into scratch [B, L, S]; a row kernel masks them (key padding, causal),
// softmaxes them and applies dropout, drawing element (b * L + i) * S + j of the key as
// F.dropout over the weights would; a second GEMM multiplies them into the output. The
// backward recomputes the weights the same way. Unlike the cpu kernel the weights do pass
// through device memory, as scratch that is freed when the call returns.
#include <math.h>

#include <cstdint>
#include <limits>
#include <string>

#include "../../core/args/attention.h"
#include "../../core/philox.h"
#include "../launch.h"
#include "library.h"

namespace deepnode::cuda {

namespace attention_detail {

using args::attention::Attention;
using args::attention::readAttention;

// What the row kernels need, by value in their lambdas.
struct RowParams {
  int64_t heads, L, S;
  bool causal, dropout;
  double p;
  float multiplier;
  uint64_t seed, offset;
  const uint8_t* padding;
};

RowParams rowParams(const Attention& a) {
  const float multiplier = a.dropout ? static_cast<float>(1.0 / (1.0 - a.p)) : 1.0f;
  return {a.heads, a.L, a.S, a.causal, a.dropout, a.p, multiplier, a.key.seed, a.key.offset, a.padding};
}

DEEPNODE_HD inline bool masked(const RowParams& r, int64_t b, int64_t i, int64_t j) {
  return (r.padding != nullptr && r.padding[(b / r.heads) * r.S + j] != 0) || (r.causal && j > i);
}

// The dropout multiplier of weight e = (b * L + i) * S + j: 1 / (1 - p) when kept, else 0.
DEEPNODE_HD inline float keepOf(const RowParams& r, int64_t e) {
  if (!r.dropout) return 1.0f;
  const uint64_t g = r.offset + static_cast<uint64_t>(e);
  const philox::Block block = philox::philox4x32(g / 4, r.seed);
  return philox::uniformOf(block.x[g % 4]) >= r.p ? r.multiplier : 0.0f;
}

// Row (b, i) of scores [B * L, S], scaled already: masked keys out, softmax (all masked:
// zeros). Writes the softmax P in place.
DEEPNODE_HD inline void softmaxRow(const RowParams& r, float* scores, int64_t row) {
  const int64_t b = row / r.L, i = row % r.L;
  float* s = scores + row * r.S;
  float m = -INFINITY;
  for (int64_t j = 0; j < r.S; ++j) {
    if (masked(r, b, i, j)) s[j] = -INFINITY;
    m = s[j] > m ? s[j] : m;
  }
  if (m == -INFINITY) {
    for (int64_t j = 0; j < r.S; ++j) s[j] = 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < r.S; ++j) {
    s[j] = ::expf(s[j] - m);
    sum += s[j];
  }
  const float factor = 1.0f / sum;
  for (int64_t j = 0; j < r.S; ++j) s[j] *= factor;
}

// P [B * L, S] = the weights of every head, from q [B, L, E] and k [B, S, E].
void weights(const char* op, const Attention& a, const float* q, const float* k, float* P) {
  if (a.E == 0) {
    fillZeroAsync(P, static_cast<size_t>(a.B * a.L * a.S) * sizeof(float));
  } else {
    RowMajorGemm g;
    g.transB = true;
    g.m = a.L, g.n = a.S, g.k = a.E, g.alpha = a.scale;
    g.a = q, g.lda = a.E, g.strideA = a.L * a.E;
    g.b = k, g.ldb = a.E, g.strideB = a.S * a.E;
    g.c = P, g.ldc = a.S, g.strideC = a.L * a.S;
    g.batch = a.B;
    gemmRowMajor(op, g);
  }
  const RowParams r = rowParams(a);
  forEach("fused_attention_softmax", a.B * a.L, [=] DEEPNODE_HD(int64_t row) { softmaxRow(r, P, row); });
}

// W = P * keep, element by element.
void dropWeights(const Attention& a, const float* P, float* W) {
  const RowParams r = rowParams(a);
  forEach("fused_attention_dropout", a.B * a.L * a.S, [=] DEEPNODE_HD(int64_t e) { W[e] = P[e] * keepOf(r, e); });
}

}  // namespace attention_detail

void fusedAttention(KernelCall& call) {
  using namespace attention_detail;
  Attention a = readAttention(call);
  const args::attention::AttentionBuffers io = args::attention::readAttentionBuffers(call, a);
  float* out = io.out;
  const float *q = io.q, *k = io.k, *v = io.v;
  if (a.B * a.L * a.Ev == 0) return;
  if (a.S == 0) return fillZeroAsync(out, static_cast<size_t>(a.B * a.L * a.Ev) * sizeof(float));
  Scratch P(static_cast<size_t>(a.B * a.L * a.S) * sizeof(float));
  weights("fused_attention", a, q, k, P.as<float>());
  if (a.dropout) dropWeights(a, P.as<float>(), P.as<float>());
  RowMajorGemm g;
  g.m = a.L, g.n = a.Ev, g.k = a.S;
  g.a = P.as<float>(), g.lda = a.S, g.strideA = a.L * a.S;
  g.b = v, g.ldb = a.Ev, g.strideB = a.S * a.Ev;
  g.c = out, g.ldc = a.Ev, g.strideC = a.L * a.Ev;
  g.batch = a.B;
  gemmRowMajor("fused_attention", g);
}

namespace attention_detail {

// dW [B * L, S] = gOut v^T on entry; on return dZ = P * (dP - sum_j dP * P) with
// dP = dW * keep, the gradient of the scaled scores.
void softmaxBackwardRows(const Attention& a, const float* P, float* dW) {
  const RowParams r = rowParams(a);
  forEach("fused_attention_softmax_backward", a.B * a.L, [=] DEEPNODE_HD(int64_t row) {
    const float* p = P + row * r.S;
    float* d = dW + row * r.S;
    float shift = 0.0f;
    for (int64_t j = 0; j < r.S; ++j) {
      d[j] *= keepOf(r, row * r.S + j);
      shift += d[j] * p[j];
    }
    for (int64_t j = 0; j < r.S; ++j) d[j] = p[j] * (d[j] - shift);
  });
}

// C_b = alpha op(X_b) op(Y_b) for every head b, row-major with the given leading dims.
void headGemm(const Attention& a, bool tx, bool ty, int64_t m, int64_t n, int64_t k, float alpha, const float* x,
              int64_t ldx, int64_t strideX, const float* y, int64_t ldy, int64_t strideY, float* c, int64_t ldc,
              int64_t strideC) {
  RowMajorGemm g;
  g.transA = tx, g.transB = ty;
  g.m = m, g.n = n, g.k = k, g.alpha = alpha;
  g.a = x, g.lda = ldx, g.strideA = strideX;
  g.b = y, g.ldb = ldy, g.strideB = strideY;
  g.c = c, g.ldc = ldc, g.strideC = strideC;
  g.batch = a.B;
  gemmRowMajor("fused_attention_backward", g);
}

}  // namespace attention_detail

void fusedAttentionBackward(KernelCall& call) {
  using namespace attention_detail;
  Attention a = readAttention(call);
  const args::attention::AttentionGradBuffers io = args::attention::readAttentionGradBuffers(call, a);
  const int64_t* sizes = io.sizes;
  float *gq = io.gq, *gk = io.gk, *gv = io.gv;
  const float *gOut = io.gOut, *q = io.q, *k = io.k, *v = io.v;
  for (size_t i = 0; i < 3; ++i) fillZeroAsync(call.buffers[i].data, static_cast<size_t>(sizes[i]) * sizeof(float));
  if (a.L == 0 || a.S == 0 || a.B == 0) return;
  const int64_t area = a.L * a.S;
  Scratch P(static_cast<size_t>(a.B * area) * sizeof(float));
  Scratch W(static_cast<size_t>(a.B * area) * sizeof(float));
  weights("fused_attention_backward", a, q, k, P.as<float>());
  const float* dropped = P.as<float>();
  if (a.dropout) {
    dropWeights(a, P.as<float>(), W.as<float>());
    dropped = W.as<float>();
  }
  // gv [S, Ev] = W^T gOut; then W's memory holds dW [L, S] = gOut v^T.
  if (a.Ev > 0)
    headGemm(a, true, false, a.S, a.Ev, a.L, 1.0f, dropped, a.S, area, gOut, a.Ev, a.L * a.Ev, gv, a.Ev, a.S * a.Ev);
  float* dW = W.as<float>();
  if (a.Ev == 0) {
    fillZeroAsync(dW, static_cast<size_t>(a.B * area) * sizeof(float));
  } else {
    headGemm(a, false, true, a.L, a.S, a.Ev, 1.0f, gOut, a.Ev, a.L * a.Ev, v, a.Ev, a.S * a.Ev, dW, a.S, area);
  }
  softmaxBackwardRows(a, P.as<float>(), dW);
  if (a.E == 0) return;
  // gq [L, E] = scale * dZ k; gk [S, E] = scale * dZ^T q.
  headGemm(a, false, false, a.L, a.E, a.S, a.scale, dW, a.S, area, k, a.E, a.S * a.E, gq, a.E, a.L * a.E);
  headGemm(a, true, false, a.S, a.E, a.L, a.scale, dW, a.S, area, q, a.E, a.L * a.E, gk, a.E, a.S * a.E);
}

}  // namespace deepnode::cuda
