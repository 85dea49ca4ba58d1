// Standalone checks of rnn.cc (rnn_forward, rnn_backward) against naive loops in double for
// every mode, both directions, lengths and a bidirectional output slot, and the error paths;
// `--bench` times one layer at the IMDB example's shapes.
// Build: native/tests/build.sh (g++ ... native/tests/rnn_test.cc native/cpu/rnn.cc + gemm).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "rnn_attrs.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

struct Case {
  std::string mode;
  int64_t steps, batch, hidden;
  bool reverse;
  std::vector<int32_t> lengths;  // empty: every sequence runs all steps
  int64_t slots = 1;             // 2: write columns [H, 2H) and state slot 1
};

int64_t gatesOf(const std::string& mode) {
  return mode == "lstm" ? 4 : mode == "gru" ? 3 : 1;
}
int64_t widthOf(const std::string& mode) {
  return mode == "lstm" ? 6 : mode == "gru" ? 5 : 1;
}
double sigmoid(double x) {
  return 1 / (1 + std::exp(-x));
}

struct Data {
  std::vector<float> xProj, wHh, bHh, h0, c0, gradOutput, gradHN, gradCN;
};

// The expected values of one sequence's run, in double.
struct Expected {
  std::vector<double> output, hN, cN, gradXProj, gradWHh, gradBHh, gradH0, gradC0;
};

// The naive forward of sequence n: returns the states after each processing step.
void naiveSequence(const Case& c, const Data& d, int64_t n, Expected& e, std::vector<std::vector<double>>& hs,
                   std::vector<std::vector<double>>& cs, std::vector<std::vector<double>>& saved) {
  int64_t H = c.hidden, G = gatesOf(c.mode), T = c.steps, N = c.batch, slot = c.slots - 1;
  int64_t length = c.lengths.empty() ? T : c.lengths[n], outWidth = c.slots * H, column = slot * H;
  std::vector<double> h(H), cell(H);
  for (int64_t j = 0; j < H; ++j)
    h[j] = d.h0[(slot * N + n) * H + j], cell[j] = d.c0.empty() ? 0 : d.c0[(slot * N + n) * H + j];
  for (int64_t step = 0; step < T; ++step) {
    int64_t t = c.reverse ? T - 1 - step : step;
    std::vector<double> gates(4 * H, 0), hp(G * H, 0);
    if (t < length) {
      for (int64_t r = 0; r < G * H; ++r) {
        hp[r] = d.bHh[r];
        for (int64_t k = 0; k < H; ++k) hp[r] += d.wHh[r * H + k] * h[k];
      }
      const float* xp = d.xProj.data() + (t * N + n) * G * H;
      for (int64_t j = 0; j < H; ++j) {
        if (c.mode == "lstm") {
          double i = sigmoid(xp[j] + hp[j]), f = sigmoid(xp[H + j] + hp[H + j]);
          double g = std::tanh(xp[2 * H + j] + hp[2 * H + j]), o = sigmoid(xp[3 * H + j] + hp[3 * H + j]);
          gates[j] = i, gates[H + j] = f, gates[2 * H + j] = g, gates[3 * H + j] = o;
          cell[j] = f * cell[j] + i * g;
          h[j] = o * std::tanh(cell[j]);
        } else if (c.mode == "gru") {
          double r = sigmoid(xp[j] + hp[j]), z = sigmoid(xp[H + j] + hp[H + j]);
          double nn = std::tanh(xp[2 * H + j] + r * hp[2 * H + j]);
          gates[j] = r, gates[H + j] = z, gates[2 * H + j] = nn, gates[3 * H + j] = hp[2 * H + j];
          h[j] = (1 - z) * nn + z * h[j];
        } else {
          double a = xp[j] + hp[j];
          h[j] = c.mode == "rnn_tanh" ? std::tanh(a) : std::max(a, 0.0);
        }
        e.output[(t * N + n) * outWidth + column + j] = h[j];
      }
    }
    hs.push_back(h);
    cs.push_back(cell);
    saved.push_back(gates);
  }
  for (int64_t j = 0; j < H; ++j) e.hN[(slot * N + n) * H + j] = h[j], e.cN[(slot * N + n) * H + j] = cell[j];
}

// BPTT of sequence n over the states naiveSequence recorded.
void naiveBackward(const Case& c, const Data& d, int64_t n, Expected& e, const std::vector<std::vector<double>>& hs,
                   const std::vector<std::vector<double>>& cs, const std::vector<std::vector<double>>& saved) {
  int64_t H = c.hidden, G = gatesOf(c.mode), T = c.steps, N = c.batch, slot = c.slots - 1;
  int64_t length = c.lengths.empty() ? T : c.lengths[n], outWidth = c.slots * H, column = slot * H;
  std::vector<double> dh(H), dc(H), h0(H), c0(H, 0);
  for (int64_t j = 0; j < H; ++j) {
    int64_t k = (slot * N + n) * H + j;
    dh[j] = d.gradHN[k], dc[j] = d.gradCN.empty() ? 0 : d.gradCN[k];
    h0[j] = d.h0[k], c0[j] = d.c0.empty() ? 0 : d.c0[k];
  }
  for (int64_t step = T - 1; step >= 0; --step) {
    int64_t t = c.reverse ? T - 1 - step : step;
    if (t >= length) continue;
    const std::vector<double>& hPrev = step == 0 ? h0 : hs[step - 1];
    const std::vector<double>& cPrev = step == 0 ? c0 : cs[step - 1];
    const std::vector<double>& w = saved[step];
    std::vector<double> dx(G * H), dhid(G * H), direct(H, 0);
    for (int64_t j = 0; j < H; ++j) {
      double dhv = dh[j] + d.gradOutput[(t * N + n) * outWidth + column + j];
      if (c.mode == "lstm") {
        double i = w[j], f = w[H + j], g = w[2 * H + j], o = w[3 * H + j], tc = std::tanh(cs[step][j]);
        double dcv = dc[j] + dhv * o * (1 - tc * tc);
        dx[j] = dcv * g * i * (1 - i), dx[H + j] = dcv * cPrev[j] * f * (1 - f);
        dx[2 * H + j] = dcv * i * (1 - g * g), dx[3 * H + j] = dhv * tc * o * (1 - o);
        dc[j] = dcv * f;
        for (int64_t q = 0; q < 4; ++q) dhid[q * H + j] = dx[q * H + j];
      } else if (c.mode == "gru") {
        double r = w[j], z = w[H + j], nn = w[2 * H + j], hn = w[3 * H + j];
        double dnPre = dhv * (1 - z) * (1 - nn * nn), dzPre = dhv * (hPrev[j] - nn) * z * (1 - z);
        double drPre = dnPre * hn * r * (1 - r);
        dx[j] = dhid[j] = drPre, dx[H + j] = dhid[H + j] = dzPre, dx[2 * H + j] = dnPre;
        dhid[2 * H + j] = dnPre * r;
        direct[j] = dhv * z;
      } else {
        double h = hs[step][j];
        dx[j] = dhid[j] = c.mode == "rnn_tanh" ? dhv * (1 - h * h) : (h > 0 ? dhv : 0);
      }
    }
    for (int64_t r = 0; r < G * H; ++r) {
      e.gradXProj[(t * N + n) * G * H + r] = dx[r];
      e.gradBHh[r] += dhid[r];
      for (int64_t k = 0; k < H; ++k) e.gradWHh[r * H + k] += dhid[r] * hPrev[k];
    }
    for (int64_t k = 0; k < H; ++k) {
      dh[k] = direct[k];
      for (int64_t r = 0; r < G * H; ++r) dh[k] += d.wHh[r * H + k] * dhid[r];
    }
  }
  for (int64_t j = 0; j < H; ++j) e.gradH0[(slot * N + n) * H + j] = dh[j], e.gradC0[(slot * N + n) * H + j] = dc[j];
}

void testCase(const Case& c) {
  int64_t T = c.steps, N = c.batch, H = c.hidden, G = gatesOf(c.mode), S = c.slots * N * H;
  bool lstm = c.mode == "lstm";
  Data d{randomFloats(T * N * G * H, -1.5f, 1.5f),
         randomFloats(G * H * H, -0.6f, 0.6f),
         randomFloats(G * H, -0.5f, 0.5f),
         randomFloats(S, -1, 1),
         lstm ? randomFloats(S, -1, 1) : std::vector<float>{},
         randomFloats(T * N * c.slots * H, -1, 1),
         randomFloats(S, -1, 1),
         lstm ? randomFloats(S, -1, 1) : std::vector<float>{}};
  Expected e{std::vector<double>(T * N * c.slots * H),
             std::vector<double>(S),
             std::vector<double>(S),
             std::vector<double>(T * N * G * H),
             std::vector<double>(G * H * H),
             std::vector<double>(G * H),
             std::vector<double>(S),
             std::vector<double>(S)};
  for (int64_t n = 0; n < N; ++n) {
    std::vector<std::vector<double>> hs, cs, saved;
    naiveSequence(c, d, n, e, hs, cs, saved);
    naiveBackward(c, d, n, e, hs, cs, saved);
  }

  std::vector<float> output(T * N * c.slots * H), hN(S), cN(lstm ? S : 0), ws(T * N * widthOf(c.mode) * H);
  std::vector<int32_t> lengths = c.lengths;
  auto optional = [](auto& v) { return v.empty() ? nullBuffer() : buf(v); };
  KernelCall f = makeCall("rnn_forward",
                          {buf(output), buf(hN), optional(cN), buf(ws), buf(d.xProj), buf(d.wHh), buf(d.bHh), buf(d.h0),
                           optional(d.c0), optional(lengths)},
                          rnnAttrsOf(c));
  cpu::rnnForward(f);
  std::string tag = c.mode + " T" + std::to_string(T) + " N" + std::to_string(N) + " H" + std::to_string(H) +
                    (c.reverse ? " reverse" : "") + (c.lengths.empty() ? "" : " lengths");
  // Only this direction's slot is written; the others stay zero in both.
  allClose(output, e.output, 1e-4, 1e-5, "output " + tag);
  allClose(hN, e.hN, 1e-4, 1e-5, "hN " + tag);
  if (lstm) allClose(cN, e.cN, 1e-4, 1e-5, "cN " + tag);

  std::vector<float> gX(T * N * G * H), gW(G * H * H), gB(G * H), gH0(S), gC0(lstm ? S : 0);
  KernelCall b = makeCall("rnn_backward",
                          {buf(gX), buf(gW), buf(gB), buf(gH0), optional(gC0), buf(d.gradOutput), buf(d.gradHN),
                           optional(d.gradCN), buf(ws), buf(d.wHh), buf(d.h0), optional(d.c0), optional(lengths)},
                          rnnAttrsOf(c));
  cpu::rnnBackward(b);
  allClose(gX, e.gradXProj, 1e-3, 1e-4, "gradXProj " + tag);
  allClose(gW, e.gradWHh, 1e-3, 1e-4, "gradWHh " + tag);
  allClose(gB, e.gradBHh, 1e-3, 1e-4, "gradBHh " + tag);
  allClose(gH0, e.gradH0, 1e-3, 1e-4, "gradH0 " + tag);
  if (lstm) allClose(gC0, e.gradC0, 1e-3, 1e-4, "gradC0 " + tag);
}

void testAll() {
  for (const char* mode : {"rnn_tanh", "rnn_relu", "lstm", "gru"}) {
    testCase({mode, 5, 3, 7, false, {}});
    testCase({mode, 1, 1, 5, true, {}});
    testCase({mode, 6, 4, 9, true, {6, 2, 4, 1}, 2});
    testCase({mode, 7, 5, 33, false, {7, 5, 5, 2, 0}});
    testCase({mode, 9, 6, 20, true, {3, 9, 1, 4, 4, 2}, 2});
  }
}

void testErrors() {
  Case c{"lstm", 2, 1, 3, false, {}};
  std::vector<float> output(6), hN(3), cN(3), ws(36), xProj(24), wHh(36), h0(3), c0(3);
  std::vector<int32_t> lengths = {3};
  auto call = [&](const std::string& mode, Buffer cellIn, Buffer len) {
    Case m = c;
    m.mode = mode;
    return makeCall("rnn_forward",
                    {buf(output), buf(hN), buf(cN), buf(ws), buf(xProj), buf(wHh), nullBuffer(), buf(h0), cellIn, len},
                    rnnAttrsOf(m));
  };
  check(codeOf(cpu::rnnForward, call("lstm", buf(c0), buf(lengths))) == "ERR_INDEX", "length past T");
  check(codeOf(cpu::rnnForward, call("lstm", nullBuffer(), nullBuffer())) == "ERR_VALUE", "lstm without c0");
  check(codeOf(cpu::rnnForward, call("gru", buf(c0), nullBuffer())) == "ERR_VALUE", "c0 outside lstm mode");
  check(messageOf(cpu::rnnForward, call("lstm2", buf(c0), nullBuffer())).find("unknown mode") != std::string::npos,
        "unknown mode");
  std::vector<float> shortWs(10);
  KernelCall bad = makeCall(
      "rnn_forward",
      {buf(output), buf(hN), buf(cN), buf(shortWs), buf(xProj), buf(wHh), nullBuffer(), buf(h0), buf(c0), nullBuffer()},
      rnnAttrsOf(c));
  check(codeOf(cpu::rnnForward, bad) == "ERR_SHAPE", "workspace size");
}

void bench() {
  Case c{"lstm", 256, 64, 128, false, {}};
  int64_t T = c.steps, N = c.batch, H = c.hidden, G = 4, S = N * H;
  std::vector<float> xProj = randomFloats(T * N * G * H, -1, 1), wHh = randomFloats(G * H * H, -0.1f, 0.1f);
  std::vector<float> bHh(G * H), h0(S), c0(S), output(T * N * H), hN(S), cN(S), ws(T * N * 6 * H);
  std::vector<float> gX(T * N * G * H), gW(G * H * H), gB(G * H), gH0(S), gC0(S), gOut = randomFloats(T * N * H);
  auto time = [](auto&& fn) {
    double best = 1e9;
    for (int i = 0; i < 5; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best * 1000;
  };
  double forward = time([&] {
    KernelCall f = makeCall(
        "rnn_forward",
        {buf(output), buf(hN), buf(cN), buf(ws), buf(xProj), buf(wHh), buf(bHh), buf(h0), buf(c0), nullBuffer()},
        rnnAttrsOf(c));
    cpu::rnnForward(f);
  });
  double backward = time([&] {
    KernelCall b = makeCall("rnn_backward",
                            {buf(gX), buf(gW), buf(gB), buf(gH0), buf(gC0), buf(gOut), nullBuffer(), nullBuffer(),
                             buf(ws), buf(wHh), buf(h0), buf(c0), nullBuffer()},
                            rnnAttrsOf(c));
    cpu::rnnBackward(b);
  });
  std::printf("lstm T=256 N=64 H=128 (recurrence only): forward %.1f ms, backward %.1f ms\n", forward, backward);
}

}  // namespace

int main(int argc, char** argv) {
  const char* threads = std::getenv("DEEPNODE_NUM_THREADS");  // the same override as the addon
  ThreadPool pool(threads ? std::max(1, std::atoi(threads)) : 2);
  setCurrentPool(&pool);
  testAll();
  testErrors();
  if (argc > 1 && std::string(argv[1]) == "--bench") bench();
  return finish("rnn_test");
}
