// Fused recurrent kernels: one layer-direction of an RNN (tanh, relu), LSTM or GRU over the
// whole sequence, from the input projection x W_ih^T + b_ih computed beforehand. Per step,
// one GEMM multiplies the previous state by W_hh^T (our packed sgemm, threaded inside)
// and one fused gate kernel, vectorised and split across threads over batch * hidden, does
// the rest. Backward (BPTT) has the same shape; dW_hh is one GEMM over all steps at the end,
// since the workspace keeps every step's state. Shapes and layouts: lib/backend/rnn.ts.
#include "../core/args/rnn.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../core/threadpool.h"
#include "clones.h"
#include "gemm.h"
#include "kernels.h"
#include "vec_math.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 1024;  // (sequence, unit) pairs of gate work per task

using args::rnn::activeRows;
using args::rnn::Mode;
using args::rnn::previousState;
using args::rnn::RnnShape;
using args::rnn::StateRows;

// Per-sequence lengths (all `steps` when absent), each checked to lie in [0, steps].
std::vector<int32_t> readLengths(const KernelCall& call, size_t index, const RnnShape& s) {
  std::vector<int32_t> lengths(s.batch, static_cast<int32_t>(s.steps));
  if (!call.hasBuffer(index)) return lengths;
  call.buffer(index, "lengths", DType::Int32);
  call.expectSize(index, "lengths", s.batch);
  const int32_t* values = call.buffers[index].as<int32_t>();
  for (int64_t n = 0; n < s.batch; ++n) {
    args::rnn::checkLength(call, values[n], s.steps);
    lengths[n] = values[n];
  }
  return lengths;
}

// Calls fn(n, j0, j1) for the pieces of rows (of `hidden` units) that [begin, end) covers.
template <typename Fn>
void forEachSegment(int64_t begin, int64_t end, int64_t hidden, Fn&& fn) {
  while (begin < end) {
    int64_t n = begin / hidden, j0 = begin % hidden;
    int64_t j1 = std::min(hidden, j0 + (end - begin));
    fn(n, j0, j1);
    begin += j1 - j0;
  }
}

// ---------------------------------------------------------------------------------------
// Gate kernels of one step, over units [j0, j1) of one sequence. xp and hp are the input
// and hidden projections (hp without its bias b), w the step's workspace row.

// One gate's activation over [j0, j1): out = act(xp + hp + b). LSTM's four gates and five
// transcendental functions per unit are too much for one loop to if-convert and vectorise,
// so it runs gate by gate.
template <bool kTanh>
DEEPNODE_CLONES void gateActivation(int64_t j0, int64_t j1, const float* __restrict xp, const float* __restrict hp,
                                    const float* __restrict b, float* __restrict out) {
  for (int64_t j = j0; j < j1; ++j) {
    float a = xp[j] + hp[j] + b[j];
    out[j] = kTanh ? vec::tanh(a) : vec::sigmoid(a);
  }
}

// c' = f c + i g, h' = o tanh(c'), from the activated gates in w.
DEEPNODE_CLONES void lstmCell(int64_t H, int64_t j0, int64_t j1, const float* __restrict cPrev, float* __restrict w,
                              float* __restrict out) {
  for (int64_t j = j0; j < j1; ++j) {
    float c = w[H + j] * cPrev[j] + w[j] * w[2 * H + j];
    float h = w[3 * H + j] * vec::tanh(c);
    w[4 * H + j] = c;
    w[5 * H + j] = h;
    out[j] = h;
  }
}

void lstmForward(int64_t H, int64_t j0, int64_t j1, const float* xp, const float* hp, const float* b,
                 const float* cPrev, float* w, float* out) {
  gateActivation<false>(j0, j1, xp, hp, b, w);
  gateActivation<false>(j0, j1, xp + H, hp + H, b + H, w + H);
  gateActivation<true>(j0, j1, xp + 2 * H, hp + 2 * H, b + 2 * H, w + 2 * H);
  gateActivation<false>(j0, j1, xp + 3 * H, hp + 3 * H, b + 3 * H, w + 3 * H);
  lstmCell(H, j0, j1, cPrev, w, out);
}

DEEPNODE_CLONES void gruForward(int64_t H, int64_t j0, int64_t j1, const float* __restrict xp,
                                const float* __restrict hp, const float* __restrict b, const float* __restrict hPrev,
                                float* __restrict w, float* __restrict out) {
  for (int64_t j = j0; j < j1; ++j) {
    float r = vec::sigmoid(xp[j] + hp[j] + b[j]);
    float z = vec::sigmoid(xp[H + j] + hp[H + j] + b[H + j]);
    float hn = hp[2 * H + j] + b[2 * H + j];
    float n = vec::tanh(xp[2 * H + j] + r * hn);
    float h = (1.0f - z) * n + z * hPrev[j];
    w[j] = r;
    w[H + j] = z;
    w[2 * H + j] = n;
    w[3 * H + j] = hn;
    w[4 * H + j] = h;
    out[j] = h;
  }
}

template <bool kRelu>
DEEPNODE_CLONES void simpleForward(int64_t j0, int64_t j1, const float* __restrict xp, const float* __restrict hp,
                                   const float* __restrict b, float* __restrict w, float* __restrict out) {
  for (int64_t j = j0; j < j1; ++j) {
    float a = xp[j] + hp[j] + b[j];
    float h = kRelu ? (a > 0.0f ? a : 0.0f) : vec::tanh(a);
    w[j] = h;
    out[j] = h;
  }
}

// A step that a sequence does not take: zero gates, the state carried, zero output.
void carryForward(const RnnShape& s, int64_t j0, int64_t j1, const float* hPrev, const float* cPrev, float* w,
                  float* out) {
  int64_t H = s.hidden;
  for (int64_t g = 0; g * H < s.hOffset(); ++g) std::fill(w + g * H + j0, w + g * H + j1, 0.0f);
  std::copy(hPrev + j0, hPrev + j1, w + s.hOffset() + j0);
  if (s.mode == Mode::Lstm) std::copy(cPrev + j0, cPrev + j1, w + s.cOffset() + j0);
  std::fill(out + j0, out + j1, 0.0f);
}

// Backward of one step over units [j0, j1): dh is the state gradient from later steps,
// gOut the output's gradient at this step; writes gx (the gradient of xp), dHid (of hp,
// GRU only: for the others it is gx), dhNext (the previous state's gradient other than
// through W_hh) and, in place, dc.

DEEPNODE_CLONES void lstmBackward(int64_t H, int64_t j0, int64_t j1, const float* __restrict w,
                                  const float* __restrict cPrev, const float* __restrict dh,
                                  const float* __restrict gOut, float* __restrict dc, float* __restrict gx,
                                  float* __restrict dhNext) {
  for (int64_t j = j0; j < j1; ++j) {
    float i = w[j], f = w[H + j], g = w[2 * H + j], o = w[3 * H + j], c = w[4 * H + j];
    float dhv = dh[j] + gOut[j];
    float tc = vec::tanh(c);
    float dcv = dc[j] + dhv * o * (1.0f - tc * tc);
    gx[j] = dcv * g * i * (1.0f - i);
    gx[H + j] = dcv * cPrev[j] * f * (1.0f - f);
    gx[2 * H + j] = dcv * i * (1.0f - g * g);
    gx[3 * H + j] = dhv * tc * o * (1.0f - o);
    dc[j] = dcv * f;
    dhNext[j] = 0.0f;
  }
}

DEEPNODE_CLONES void gruBackward(int64_t H, int64_t j0, int64_t j1, const float* __restrict w,
                                 const float* __restrict hPrev, const float* __restrict dh,
                                 const float* __restrict gOut, float* __restrict gx, float* __restrict dHid,
                                 float* __restrict dhNext) {
  for (int64_t j = j0; j < j1; ++j) {
    float r = w[j], z = w[H + j], n = w[2 * H + j], hn = w[3 * H + j];
    float dhv = dh[j] + gOut[j];
    float dnPre = dhv * (1.0f - z) * (1.0f - n * n);
    float dzPre = dhv * (hPrev[j] - n) * z * (1.0f - z);
    float drPre = dnPre * hn * r * (1.0f - r);
    gx[j] = drPre;
    gx[H + j] = dzPre;
    gx[2 * H + j] = dnPre;
    dHid[j] = drPre;
    dHid[H + j] = dzPre;
    dHid[2 * H + j] = dnPre * r;
    dhNext[j] = dhv * z;
  }
}

template <bool kRelu>
DEEPNODE_CLONES void simpleBackward(int64_t j0, int64_t j1, const float* __restrict w, const float* __restrict dh,
                                    const float* __restrict gOut, float* __restrict gx, float* __restrict dhNext) {
  for (int64_t j = j0; j < j1; ++j) {
    float h = w[j];
    float dhv = dh[j] + gOut[j];
    gx[j] = kRelu ? (h > 0.0f ? dhv : 0.0f) : dhv * (1.0f - h * h);
    dhNext[j] = 0.0f;
  }
}

// ---------------------------------------------------------------------------------------

struct ForwardArgs : args::rnn::RnnForwardBuffers {
  std::vector<int32_t> lengths;
};

void forwardGates(const RnnShape& s, const ForwardArgs& a, int64_t step, const StateRows& prev, const float* hidden,
                  int64_t n, int64_t j0, int64_t j1) {
  int64_t t = s.time(step), row = t * s.batch + n;
  const float* xp = a.xProj + row * s.gh();
  const float* hp = hidden + n * s.gh();
  float* w = a.ws + row * s.ws();
  float* out = a.output + row * s.outWidth + s.column;
  const float* hPrev = prev.h + n * prev.ld;
  const float* cPrev = s.mode == Mode::Lstm ? prev.c + n * prev.ld : nullptr;
  if (t >= a.lengths[n]) return carryForward(s, j0, j1, hPrev, cPrev, w, out);
  switch (s.mode) {
    case Mode::Lstm: return lstmForward(s.hidden, j0, j1, xp, hp, a.bHh, cPrev, w, out);
    case Mode::Gru: return gruForward(s.hidden, j0, j1, xp, hp, a.bHh, hPrev, w, out);
    case Mode::Relu: return simpleForward<true>(j0, j1, xp, hp, a.bHh, w, out);
    case Mode::Tanh: return simpleForward<false>(j0, j1, xp, hp, a.bHh, w, out);
  }
}

void runForward(const RnnShape& s, const ForwardArgs& a) {
  int64_t N = s.batch, H = s.hidden;
  std::vector<float> hidden(N * s.gh());
  std::vector<int64_t> rows = activeRows(s, a.lengths);
  // W_hh^T [H, G * H] once, so each step's GEMM packs plain rows instead of transposing.
  std::vector<float> wT(H * s.gh());
  for (int64_t r = 0; r < s.gh(); ++r) {
    for (int64_t k = 0; k < H; ++k) wT[k * s.gh() + r] = a.wHh[r * H + k];
  }
  for (int64_t step = 0; step < s.steps; ++step) {
    StateRows prev = previousState(s, step, a.ws, a.h0, a.c0);
    int64_t m = rows[s.time(step)];
    if (m > 0) sgemm(false, false, m, s.gh(), H, 1.0f, prev.h, prev.ld, wT.data(), s.gh(), 0.0f, hidden.data(), s.gh());
    parallelFor(N * H, kGrain, [&](int64_t begin, int64_t end) {
      forEachSegment(begin, end, H, [&](int64_t n, int64_t j0, int64_t j1) {
        forwardGates(s, a, step, prev, hidden.data(), n, j0, j1);
      });
    });
  }
  StateRows last = previousState(s, s.steps, a.ws, a.h0, a.c0);
  for (int64_t n = 0; n < N; ++n) {
    std::copy(last.h + n * last.ld, last.h + n * last.ld + H, a.hN + n * H);
    if (a.cN != nullptr) std::copy(last.c + n * last.ld, last.c + n * last.ld + H, a.cN + n * H);
  }
}

struct BackwardArgs : args::rnn::RnnBackwardBuffers {
  std::vector<int32_t> lengths;
};

// The gate backward of step `step` for one segment; dHid is gx except in GRU mode.
void backwardGates(const RnnShape& s, const BackwardArgs& a, int64_t step, const StateRows& prev, float* dHid,
                   const float* zeros, float* dh, float* dc, float* dhNext, int64_t n, int64_t j0, int64_t j1) {
  int64_t H = s.hidden, t = s.time(step), row = t * s.batch + n;
  float* gx = a.gradXProj + row * s.gh();
  float* dHidRow = dHid + row * s.gh();
  float* dhRow = dh + n * H;
  float* dhNextRow = dhNext + n * H;
  if (t >= a.lengths[n]) {
    for (int64_t g = 0; g < s.gates(); ++g) {
      std::fill(gx + g * H + j0, gx + g * H + j1, 0.0f);
      std::fill(dHidRow + g * H + j0, dHidRow + g * H + j1, 0.0f);
    }
    std::copy(dhRow + j0, dhRow + j1, dhNextRow + j0);
    return;
  }
  const float* w = a.ws + row * s.ws();
  const float* gOut = a.gradOutput == nullptr ? zeros : a.gradOutput + row * s.outWidth + s.column;
  switch (s.mode) {
    case Mode::Lstm: return lstmBackward(H, j0, j1, w, prev.c + n * prev.ld, dhRow, gOut, dc + n * H, gx, dhNextRow);
    case Mode::Gru: return gruBackward(H, j0, j1, w, prev.h + n * prev.ld, dhRow, gOut, gx, dHidRow, dhNextRow);
    case Mode::Relu: return simpleBackward<true>(j0, j1, w, dhRow, gOut, gx, dhNextRow);
    case Mode::Tanh: return simpleBackward<false>(j0, j1, w, dhRow, gOut, gx, dhNextRow);
  }
}

// dW_hh = sum over steps of dHid[t]^T h_prev(t): the initial state pairs with the first
// processed step, every other step with the workspace's state of its predecessor.
void weightGradient(const RnnShape& s, const BackwardArgs& a, const float* dHid) {
  int64_t N = s.batch, H = s.hidden, gh = s.gh(), rest = (s.steps - 1) * N;
  const float* first = dHid + s.time(0) * N * gh;
  sgemm(true, false, gh, H, N, 1.0f, first, gh, a.h0, H, 0.0f, a.gradWHh, H);
  if (rest == 0) return;
  // Forward: steps 1..T-1 pair with states 0..T-2; reverse: steps 0..T-2 with states 1..T-1.
  const float* later = s.reverse ? dHid : dHid + N * gh;
  const float* states = a.ws + (s.reverse ? N * s.ws() : 0) + s.hOffset();
  sgemm(true, false, gh, H, rest, 1.0f, later, gh, states, s.ws(), 1.0f, a.gradWHh, H);
}

// Column sums of dHid [rows, gh] in double.
void biasGradient(const RnnShape& s, const float* dHid, float* gradBHh) {
  int64_t rows = s.steps * s.batch, gh = s.gh();
  parallelFor(gh, 64, [&](int64_t begin, int64_t end) {
    std::vector<double> sums(end - begin, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = dHid + r * gh;
      for (int64_t j = begin; j < end; ++j) sums[j - begin] += row[j];
    }
    for (int64_t j = begin; j < end; ++j) gradBHh[j] = static_cast<float>(sums[j - begin]);
  });
}

void runBackward(const RnnShape& s, const BackwardArgs& a) {
  int64_t N = s.batch, H = s.hidden;
  std::vector<int64_t> rows = activeRows(s, a.lengths);
  std::vector<float> dh(N * H, 0.0f), dhNext(N * H, 0.0f), dc(N * H, 0.0f), zeros(H, 0.0f);
  if (a.gradHN != nullptr) std::copy(a.gradHN, a.gradHN + N * H, dh.begin());
  if (a.gradCN != nullptr) std::copy(a.gradCN, a.gradCN + N * H, dc.begin());
  std::vector<float> gruHidden(s.mode == Mode::Gru ? s.steps * N * s.gh() : 0);
  float* dHid = s.mode == Mode::Gru ? gruHidden.data() : a.gradXProj;
  for (int64_t step = s.steps - 1; step >= 0; --step) {
    StateRows prev = previousState(s, step, a.ws, a.h0, a.c0);
    parallelFor(N * H, kGrain, [&](int64_t begin, int64_t end) {
      forEachSegment(begin, end, H, [&](int64_t n, int64_t j0, int64_t j1) {
        backwardGates(s, a, step, prev, dHid, zeros.data(), dh.data(), dc.data(), dhNext.data(), n, j0, j1);
      });
    });
    const float* dHidStep = dHid + s.time(step) * N * s.gh();
    int64_t m = rows[s.time(step)];  // dHid is zero in the rows after
    if (m > 0) sgemm(false, false, m, H, s.gh(), 1.0f, dHidStep, s.gh(), a.wHh, H, 1.0f, dhNext.data(), H);
    std::swap(dh, dhNext);
  }
  std::copy(dh.begin(), dh.end(), a.gradH0);
  if (a.gradC0 != nullptr) std::copy(dc.begin(), dc.end(), a.gradC0);
  if (s.steps == 0) {
    std::fill(a.gradWHh, a.gradWHh + s.gh() * H, 0.0f);
  } else {
    weightGradient(s, a, dHid);
  }
  if (a.gradBHh != nullptr) biasGradient(s, dHid, a.gradBHh);
}

}  // namespace

// buffers: output, hN, cN?, workspace, xProj, wHh, bHh?, h0, c0?, lengths?
void rnnForward(KernelCall& call) {
  RnnShape s = args::rnn::readRnnShape(call);
  ForwardArgs a{args::rnn::readForwardBuffers(call, s), readLengths(call, 9, s)};
  std::vector<float> zeroBias(a.bHh == nullptr ? s.gh() : 0, 0.0f);
  if (a.bHh == nullptr) a.bHh = zeroBias.data();
  runForward(s, a);
}

// buffers: gradXProj, gradWHh, gradBHh?, gradH0, gradC0?, gradOutput?, gradHN?, gradCN?, workspace, wHh, h0, c0?,
// lengths?
void rnnBackward(KernelCall& call) {
  RnnShape s = args::rnn::readRnnShape(call);
  BackwardArgs a{args::rnn::readBackwardBuffers(call, s), readLengths(call, 12, s)};
  runBackward(s, a);
}

}  // namespace deepnode::cpu
