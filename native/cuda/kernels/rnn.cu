// Recurrent layers on CUDA: one layer-direction of an RNN (tanh, relu), LSTM or GRU over
// the whole sequence, from the input projection x W_ih^T + b_ih computed beforehand, with
// the cpu kernel's buffers, attributes, checks and workspace layout (native/cpu/rnn.cc,
// lib/backend/rnn.ts). Per step: one cuBLAS GEMM h_{t-1} W_hh^T over the rows still
// running, then one element-wise gate kernel over batch * hidden. Backward (BPTT) runs the
// steps in reverse with the same pair; dW_hh is two GEMMs over all steps at the end (the
// workspace keeps every step's state) and db_hh a per-column sum in double.
#include <math.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../../core/args/rnn.h"
#include "../launch.h"
#include "library.h"

namespace deepnode::cuda {

namespace rnn_detail {

using args::rnn::activeRows;
using args::rnn::Mode;
using args::rnn::previousState;
using args::rnn::RnnShape;
using args::rnn::StateRows;

// The lengths on the device (nullptr when absent: all `steps`) and on the host, where each
// is checked to lie in [0, steps] and fixes the rows each step's GEMM must cover. The host
// values come from the lengthValues attribute where the caller has them, so that the call
// need not wait for the device to read them back.
struct Lengths {
  const int32_t* device = nullptr;
  std::vector<int32_t> host;
};

Lengths readLengths(const KernelCall& call, size_t index, const RnnShape& s) {
  Lengths lengths;
  lengths.host.assign(s.batch, static_cast<int32_t>(s.steps));
  if (!call.hasBuffer(index)) return lengths;
  call.buffer(index, "lengths", DType::Int32);
  call.expectSize(index, "lengths", s.batch);
  lengths.device = call.buffers[index].as<int32_t>();
  if (call.has("lengthValues")) {
    const std::vector<int64_t> values = call.ints("lengthValues");
    if (static_cast<int64_t>(values.size()) != s.batch)
      call.fail("ERR_SHAPE",
                "lengthValues must hold " + std::to_string(s.batch) + " lengths, got " + std::to_string(values.size()));
    for (int64_t value : values) {  // clamped into int32: a value out of range stays out of range
      args::rnn::checkLength(call, static_cast<int32_t>(std::clamp<int64_t>(value, INT32_MIN, INT32_MAX)), s.steps);
    }
    lengths.host.assign(values.begin(), values.end());
    return lengths;
  }
  copyToHostNow(lengths.host.data(), lengths.device, s.batch * sizeof(int32_t));
  for (int32_t value : lengths.host) args::rnn::checkLength(call, value, s.steps);
  return lengths;
}

// ---- Gate kernels -------------------------------------------------------------------

DEEPNODE_HD inline float sigmoidOf(float a) {
  return 1.0f / (1.0f + ::expf(-a));
}

// One step's forward gate work, for time t; pointers are at that step's rows.
struct ForwardStep {
  Mode mode;
  int64_t hidden, width, outWidth, time, steps;
  const int32_t* lengths;  // [N] or nullptr
  const float* xp;         // [N, G * H] the input projection
  const float* hp;         // [N, G * H] the hidden projection (rows past the GEMM's unused)
  const float* bias;       // [G * H] or nullptr
  const float* hPrev;      // [N, ld]
  const float* cPrev;      // [N, ld], LSTM only
  int64_t ld;
  float* w;    // [N, width] the workspace's row of this step
  float* out;  // [N, outWidth] at this direction's column
};

DEEPNODE_HD inline float gateInput(const ForwardStep& a, int64_t n, int64_t k) {
  const int64_t gh = (a.mode == Mode::Lstm ? 4 : a.mode == Mode::Gru ? 3 : 1) * a.hidden;
  return a.xp[n * gh + k] + a.hp[n * gh + k] + (a.bias == nullptr ? 0.0f : a.bias[k]);
}

// A step the sequence does not take: zero gates, the state carried, zero output.
DEEPNODE_HD inline void carryUnit(const ForwardStep& a, float* w, float* out, float hPrev, float cPrev, int64_t j) {
  const int64_t H = a.hidden, hOffset = a.width - H;
  for (int64_t g = 0; g * H < hOffset; ++g) w[g * H + j] = 0.0f;
  w[hOffset + j] = hPrev;
  if (a.mode == Mode::Lstm) w[4 * H + j] = cPrev;
  out[j] = 0.0f;
}

DEEPNODE_HD inline void lstmUnit(const ForwardStep& a, int64_t n, int64_t j, float cPrev, float* w, float* out) {
  const int64_t H = a.hidden;
  float i = sigmoidOf(gateInput(a, n, j)), f = sigmoidOf(gateInput(a, n, H + j));
  float g = ::tanhf(gateInput(a, n, 2 * H + j)), o = sigmoidOf(gateInput(a, n, 3 * H + j));
  float c = f * cPrev + i * g, h = o * ::tanhf(c);
  w[j] = i, w[H + j] = f, w[2 * H + j] = g, w[3 * H + j] = o, w[4 * H + j] = c, w[5 * H + j] = h;
  out[j] = h;
}

DEEPNODE_HD inline void gruUnit(const ForwardStep& a, int64_t n, int64_t j, float hPrev, float* w, float* out) {
  const int64_t H = a.hidden, gh = 3 * H;
  float r = sigmoidOf(gateInput(a, n, j)), z = sigmoidOf(gateInput(a, n, H + j));
  float hn = a.hp[n * gh + 2 * H + j] + (a.bias == nullptr ? 0.0f : a.bias[2 * H + j]);
  float nGate = ::tanhf(a.xp[n * gh + 2 * H + j] + r * hn);
  float h = (1.0f - z) * nGate + z * hPrev;
  w[j] = r, w[H + j] = z, w[2 * H + j] = nGate, w[3 * H + j] = hn, w[4 * H + j] = h;
  out[j] = h;
}

DEEPNODE_HD inline void forwardUnit(const ForwardStep& a, int64_t n, int64_t j) {
  float* w = a.w + n * a.width;
  float* out = a.out + n * a.outWidth;
  const float hPrev = a.hPrev[n * a.ld + j];
  const float cPrev = a.mode == Mode::Lstm ? a.cPrev[n * a.ld + j] : 0.0f;
  const int64_t length = a.lengths == nullptr ? a.steps : a.lengths[n];
  if (a.time >= length) return carryUnit(a, w, out, hPrev, cPrev, j);
  if (a.mode == Mode::Lstm) return lstmUnit(a, n, j, cPrev, w, out);
  if (a.mode == Mode::Gru) return gruUnit(a, n, j, hPrev, w, out);
  float v = gateInput(a, n, j);
  float h = a.mode == Mode::Relu ? (v > 0.0f ? v : 0.0f) : ::tanhf(v);
  w[j] = h;
  out[j] = h;
}

// One step's backward gate work. dh is the state's gradient from later steps, gOut the
// output's at this step; writes gx (of xp), dHid (of hp; the same buffer except in GRU
// mode), dhNext (the previous state's gradient other than through W_hh) and dc in place.
struct BackwardStep {
  Mode mode;
  int64_t hidden, width, outWidth, time, steps;
  const int32_t* lengths;  // [N] or nullptr
  const float* w;          // [N, width]
  const float* hPrev;      // [N, ld]
  const float* cPrev;      // [N, ld], LSTM only
  int64_t ld;
  const float* dh;    // [N, H]
  const float* gOut;  // [N, outWidth] at this direction's column, or nullptr
  float* dc;          // [N, H], LSTM only
  float* dhNext;      // [N, H]
  float* gx;          // [N, G * H]
  float* dHid;        // [N, G * H]
};

DEEPNODE_HD inline void lstmBackUnit(const BackwardStep& a, int64_t n, int64_t j, float dhv) {
  const int64_t H = a.hidden;
  const float* w = a.w + n * a.width;
  float* gx = a.gx + n * 4 * H;
  float i = w[j], f = w[H + j], g = w[2 * H + j], o = w[3 * H + j], c = w[4 * H + j];
  float tc = ::tanhf(c);
  float dcv = a.dc[n * H + j] + dhv * o * (1.0f - tc * tc);
  gx[j] = dcv * g * i * (1.0f - i);
  gx[H + j] = dcv * a.cPrev[n * a.ld + j] * f * (1.0f - f);
  gx[2 * H + j] = dcv * i * (1.0f - g * g);
  gx[3 * H + j] = dhv * tc * o * (1.0f - o);
  a.dc[n * H + j] = dcv * f;
  a.dhNext[n * H + j] = 0.0f;
}

DEEPNODE_HD inline void gruBackUnit(const BackwardStep& a, int64_t n, int64_t j, float dhv) {
  const int64_t H = a.hidden;
  const float* w = a.w + n * a.width;
  float *gx = a.gx + n * 3 * H, *dHid = a.dHid + n * 3 * H;
  float r = w[j], z = w[H + j], nGate = w[2 * H + j], hn = w[3 * H + j];
  float dnPre = dhv * (1.0f - z) * (1.0f - nGate * nGate);
  float dzPre = dhv * (a.hPrev[n * a.ld + j] - nGate) * z * (1.0f - z);
  float drPre = dnPre * hn * r * (1.0f - r);
  gx[j] = drPre, gx[H + j] = dzPre, gx[2 * H + j] = dnPre;
  dHid[j] = drPre, dHid[H + j] = dzPre, dHid[2 * H + j] = dnPre * r;
  a.dhNext[n * H + j] = dhv * z;
}

DEEPNODE_HD inline void backwardUnit(const BackwardStep& a, int64_t n, int64_t j) {
  const int64_t H = a.hidden;
  const int64_t gates = a.mode == Mode::Lstm ? 4 : a.mode == Mode::Gru ? 3 : 1;
  const int64_t length = a.lengths == nullptr ? a.steps : a.lengths[n];
  if (a.time >= length) {
    for (int64_t g = 0; g < gates; ++g) a.gx[n * gates * H + g * H + j] = a.dHid[n * gates * H + g * H + j] = 0.0f;
    a.dhNext[n * H + j] = a.dh[n * H + j];
    return;
  }
  const float dhv = a.dh[n * H + j] + (a.gOut == nullptr ? 0.0f : a.gOut[n * a.outWidth + j]);
  if (a.mode == Mode::Lstm) return lstmBackUnit(a, n, j, dhv);
  if (a.mode == Mode::Gru) return gruBackUnit(a, n, j, dhv);
  const float h = a.w[n * a.width + j];
  a.gx[n * H + j] = a.mode == Mode::Relu ? (h > 0.0f ? dhv : 0.0f) : dhv * (1.0f - h * h);
  a.dhNext[n * H + j] = 0.0f;
}

// ---- Launchers ----------------------------------------------------------------------

void launchForward(int64_t units, const ForwardStep& step) {
  const int64_t H = step.hidden;
  forEach("rnn_forward_gates", units, [=] DEEPNODE_HD(int64_t i) { forwardUnit(step, i / H, i % H); });
}

void launchBackward(int64_t units, const BackwardStep& step) {
  const int64_t H = step.hidden;
  forEach("rnn_backward_gates", units, [=] DEEPNODE_HD(int64_t i) { backwardUnit(step, i / H, i % H); });
}

// dst [N, H] = src rows [N, ld] (the first H of each); src nullptr gives zeros.
void copyRows(float* dst, const float* src, int64_t ld, int64_t batch, int64_t H) {
  if (src == nullptr) return fillZeroAsync(dst, static_cast<size_t>(batch * H) * sizeof(float));
  forEach("rnn_copy_rows", batch * H, [=] DEEPNODE_HD(int64_t i) { dst[i] = src[(i / H) * ld + i % H]; });
}

// Rows of dHid each thread of the bias gradient's first pass sums.
constexpr int64_t kRowsPerChunk = 256;

// gradB [gh] = column sums of dHid [rows, gh], in double, in two passes so that long
// sequences keep many threads busy: partial sums over chunks of rows, then their sum.
void columnSums(float* gradB, const float* dHid, int64_t rows, int64_t gh) {
  const int64_t per = kRowsPerChunk, chunks = (rows + per - 1) / per;
  if (gh == 0) return;
  if (chunks == 0) return fillZeroAsync(gradB, static_cast<size_t>(gh) * sizeof(float));
  Scratch partials(static_cast<size_t>(chunks * gh) * sizeof(double));
  double* partial = partials.as<double>();
  forEach("rnn_bias_gradient_chunks", chunks * gh, [=] DEEPNODE_HD(int64_t i) {
    const int64_t chunk = i / gh, j = i % gh, end = (chunk + 1) * per < rows ? (chunk + 1) * per : rows;
    double sum = 0;
    for (int64_t r = chunk * per; r < end; ++r) sum += dHid[r * gh + j];
    partial[i] = sum;
  });
  forEach("rnn_bias_gradient", gh, [=] DEEPNODE_HD(int64_t j) {
    double sum = 0;
    for (int64_t c = 0; c < chunks; ++c) sum += partial[c * gh + j];
    gradB[j] = static_cast<float>(sum);
  });
}

// Device memory for `count` floats, or none.
struct Floats {
  explicit Floats(int64_t count)
      : scratch(count > 0 ? std::make_unique<Scratch>(static_cast<size_t>(count) * sizeof(float)) : nullptr) {}
  float* get() const { return scratch == nullptr ? nullptr : scratch->as<float>(); }
  std::unique_ptr<Scratch> scratch;
};

struct ForwardArgs : args::rnn::RnnForwardBuffers {
  Lengths lengths;
};

ForwardStep forwardStep(const RnnShape& s, const ForwardArgs& a, int64_t step, const StateRows& prev,
                        const float* hidden) {
  const int64_t t = s.time(step), N = s.batch;
  return {s.mode,
          s.hidden,
          s.ws(),
          s.outWidth,
          t,
          s.steps,
          a.lengths.device,
          a.xProj + t * N * s.gh(),
          hidden,
          a.bHh,
          prev.h,
          prev.c,
          prev.ld,
          a.ws + t * N * s.ws(),
          a.output + t * N * s.outWidth + s.column};
}

void runForward(const RnnShape& s, const ForwardArgs& a) {
  const int64_t N = s.batch, H = s.hidden;
  Floats hidden(N * s.gh());
  std::vector<int64_t> rows = activeRows(s, a.lengths.host);
  for (int64_t step = 0; step < s.steps; ++step) {
    StateRows prev = previousState(s, step, a.ws, a.h0, a.c0);
    RowMajorGemm g;  // hidden [m, G * H] = h_prev [m, H] W_hh^T
    g.transB = true, g.m = rows[s.time(step)], g.n = s.gh(), g.k = H;
    g.a = prev.h, g.lda = prev.ld, g.b = a.wHh, g.ldb = H, g.c = hidden.get(), g.ldc = s.gh();
    gemmRowMajor("rnn_forward", g);
    launchForward(N * H, forwardStep(s, a, step, prev, hidden.get()));
  }
  StateRows last = previousState(s, s.steps, a.ws, a.h0, a.c0);
  copyRows(a.hN, last.h, last.ld, N, H);
  if (a.cN != nullptr) copyRows(a.cN, last.c, last.ld, N, H);
}

struct BackwardArgs : args::rnn::RnnBackwardBuffers {
  Lengths lengths;
};

// dW_hh = sum over steps of dHid[t]^T h_prev(t) (see native/cpu/rnn.cc).
void weightGradient(const RnnShape& s, const BackwardArgs& a, const float* dHid) {
  const int64_t N = s.batch, H = s.hidden, gh = s.gh(), rest = (s.steps - 1) * N;
  RowMajorGemm g;  // gradWHh [G * H, H] = dHid(first)^T [G * H, N] h0 [N, H]
  g.transA = true, g.m = gh, g.n = H, g.k = N;
  g.a = dHid + s.time(0) * N * gh, g.lda = gh, g.b = a.h0, g.ldb = H, g.c = a.gradWHh, g.ldc = H;
  gemmRowMajor("rnn_backward", g);
  if (rest == 0) return;
  g.k = rest, g.beta = 1.0f;
  g.a = s.reverse ? dHid : dHid + N * gh;
  g.b = a.ws + (s.reverse ? N * s.ws() : 0) + s.hOffset(), g.ldb = s.ws();
  gemmRowMajor("rnn_backward", g);
}

BackwardStep backwardStep(const RnnShape& s, const BackwardArgs& a, int64_t step, const StateRows& prev,
                          const float* dh, float* dc, float* dhNext, float* dHid) {
  const int64_t t = s.time(step), N = s.batch;
  const float* gOut = a.gradOutput == nullptr ? nullptr : a.gradOutput + t * N * s.outWidth + s.column;
  return {s.mode,
          s.hidden,
          s.ws(),
          s.outWidth,
          t,
          s.steps,
          a.lengths.device,
          a.ws + t * N * s.ws(),
          prev.h,
          prev.c,
          prev.ld,
          dh,
          gOut,
          dc,
          dhNext,
          a.gradXProj + t * N * s.gh(),
          dHid + t * N * s.gh()};
}

void runBackward(const RnnShape& s, const BackwardArgs& a) {
  const int64_t N = s.batch, H = s.hidden;
  std::vector<int64_t> rows = activeRows(s, a.lengths.host);
  Floats dhA(N * H), dhB(N * H), dcBuf(N * H), gruHidden(s.mode == Mode::Gru ? s.steps * N * s.gh() : 0);
  float *dh = dhA.get(), *dhNext = dhB.get(), *dc = dcBuf.get();
  copyRows(dh, a.gradHN, H, N, H);
  copyRows(dc, a.gradCN, H, N, H);
  float* dHid = s.mode == Mode::Gru ? gruHidden.get() : a.gradXProj;
  for (int64_t step = s.steps - 1; step >= 0; --step) {
    StateRows prev = previousState(s, step, a.ws, a.h0, a.c0);
    launchBackward(N * H, backwardStep(s, a, step, prev, dh, dc, dhNext, dHid));
    RowMajorGemm g;  // dhNext [m, H] += dHid(t) [m, G * H] W_hh [G * H, H]
    g.m = rows[s.time(step)], g.n = H, g.k = s.gh(), g.beta = 1.0f;
    g.a = dHid + s.time(step) * N * s.gh(), g.lda = s.gh(), g.b = a.wHh, g.ldb = H, g.c = dhNext, g.ldc = H;
    gemmRowMajor("rnn_backward", g);
    std::swap(dh, dhNext);
  }
  copyRows(a.gradH0, dh, H, N, H);
  if (a.gradC0 != nullptr) copyRows(a.gradC0, dc, H, N, H);
  if (s.steps == 0) {
    fillZeroAsync(a.gradWHh, static_cast<size_t>(s.gh() * H) * sizeof(float));
  } else {
    weightGradient(s, a, dHid);
  }
  if (a.gradBHh != nullptr) columnSums(a.gradBHh, dHid, s.steps * N, s.gh());
}

}  // namespace rnn_detail

// buffers: output, hN, cN?, workspace, xProj, wHh, bHh?, h0, c0?, lengths?
void rnnForward(KernelCall& call) {
  using namespace rnn_detail;
  RnnShape s = args::rnn::readRnnShape(call);
  ForwardArgs a{args::rnn::readForwardBuffers(call, s), readLengths(call, 9, s)};
  runForward(s, a);
}

// buffers: gradXProj, gradWHh, gradBHh?, gradH0, gradC0?, gradOutput?, gradHN?, gradCN?, workspace, wHh, h0, c0?,
// lengths?
void rnnBackward(KernelCall& call) {
  using namespace rnn_detail;
  RnnShape s = args::rnn::readRnnShape(call);
  BackwardArgs a{args::rnn::readBackwardBuffers(call, s), readLengths(call, 12, s)};
  runBackward(s, a);
}

}  // namespace deepnode::cuda
