// Standalone check and benchmark of the matmul, conv2d and max_pool2d kernels: each against
// naive loops on many geometries (groups, stride, padding, dilation, odd and non-square
// kernels, batch strides), the error paths, then ms per call at MNIST's shapes.
// Build: native/tests/build.sh, then build/native-tests/conv_test [bench].
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "cpu/kernels.h"

using deepnode::AttrValue;
using deepnode::Buffer;
using deepnode::DType;
using deepnode::KernelCall;

namespace {

int failures = 0;
std::mt19937 rng(7);

std::vector<float> randomVector(int64_t count) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

template <typename T>
Buffer buf(std::vector<T>& v, DType dtype = DType::Float32) {
  return Buffer{v.data(), static_cast<int64_t>(v.size()), dtype};
}

KernelCall makeCall(const char* op, std::vector<Buffer> buffers, const std::map<std::string, double>& attrs) {
  KernelCall call;
  call.op = op;
  call.buffers = std::move(buffers);
  for (auto& [name, value] : attrs) {
    AttrValue v;
    v.number = value;
    call.attrs[name] = v;
  }
  return call;
}

void compare(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, double depth) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double tol = 1e-5 * (std::sqrt(depth) + std::fabs(want[i])) + 1e-6;
    double err = std::fabs(got[i] - want[i]) / tol;
    if (!(err <= worst)) worst = std::isnan(err) ? 1e30 : err, at = i;
  }
  if (got.size() != want.size() || worst > 4) {
    ++failures;
    std::printf("FAIL %s: worst at %zu: got %g want %g (%.3g x tol)\n", what.c_str(), at, got[at], want[at], worst);
  }
}

bool expectError(const char* what, const std::string& code, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const deepnode::KernelError& e) {
    if (e.code == code) return true;
    std::printf("FAIL %s: code %s, want %s (%s)\n", what, e.code.c_str(), code.c_str(), e.what());
    ++failures;
    return false;
  }
  std::printf("FAIL %s: no error, want %s\n", what, code.c_str());
  ++failures;
  return false;
}

// ---- matmul ----

void checkMatmul(int64_t batch, int64_t batchA, int64_t batchB, int64_t m, int64_t n, int64_t k, bool tA, bool tB,
                 float alpha, float beta) {
  auto a = randomVector(batchA * m * k), b = randomVector(batchB * k * n), out = randomVector(batch * m * n);
  std::vector<double> want(out.size());
  for (int64_t q = 0; q < batch; ++q) {
    const float* aq = a.data() + (batchA == 1 ? 0 : q * m * k);
    const float* bq = b.data() + (batchB == 1 ? 0 : q * k * n);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t p = 0; p < k; ++p)
          sum += double(tA ? aq[p * m + i] : aq[i * k + p]) * (tB ? bq[j * k + p] : bq[p * n + j]);
        int64_t o = (q * m + i) * n + j;
        want[o] = alpha * sum + (beta == 0 ? 0.0 : beta * double(out[o]));
      }
    }
  }
  if (beta == 0) std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
  auto call = makeCall("matmul", {buf(out), buf(a), buf(b)},
                       {{"batch", batch},
                        {"batchA", batchA},
                        {"batchB", batchB},
                        {"m", m},
                        {"n", n},
                        {"k", k},
                        {"transA", tA},
                        {"transB", tB},
                        {"alpha", alpha},
                        {"beta", beta}});
  deepnode::cpu::matmul(call);
  char what[160];
  std::snprintf(what, sizeof what, "matmul b=%ld/%ld/%ld m=%ld n=%ld k=%ld tA=%d tB=%d", (long)batch, (long)batchA,
                (long)batchB, (long)m, (long)n, (long)k, tA, tB);
  compare(what, out, want, k + 1);
}

void checkMatmulErrors() {
  std::vector<float> out(6), a(6), b(6);
  std::vector<int32_t> ints(6);
  auto attrs = std::map<std::string, double>{{"batch", 1}, {"batchA", 1}, {"batchB", 1}, {"m", 2},     {"n", 3},
                                             {"k", 3},     {"transA", 0}, {"transB", 0}, {"alpha", 1}, {"beta", 0}};
  expectError("matmul a size", "ERR_SHAPE", [&] {
    auto call = makeCall("matmul", {buf(out), buf(a), buf(b)}, attrs);
    deepnode::cpu::matmul(call);
  });
  try {
    auto call = makeCall("matmul", {buf(out), buf(a), buf(b)}, attrs);
    deepnode::cpu::matmul(call);
  } catch (const deepnode::KernelError& e) {
    std::printf("  message: %s\n", e.what());
  }
  attrs["k"] = 2;
  expectError("matmul dtype", "ERR_DTYPE", [&] {
    auto call = makeCall("matmul", {buf(out), buf(ints, DType::Int32), buf(b)}, attrs);
    deepnode::cpu::matmul(call);
  });
  attrs["batch"] = 3;
  attrs["batchA"] = 2;
  expectError("matmul batchA", "ERR_SHAPE", [&] {
    auto call = makeCall("matmul", {buf(out), buf(a), buf(b)}, attrs);
    deepnode::cpu::matmul(call);
  });
}

void checkMatmuls() {
  int before = failures;
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 10, 128}, {2, 3, 0}, {40, 70, 130}}) {
    for (int flags = 0; flags < 4; ++flags) {
      checkMatmul(1, 1, 1, m, n, k, flags & 1, flags & 2, 1.0f, 0.0f);
      checkMatmul(5, 5, 1, m, n, k, flags & 1, flags & 2, 0.5f, 1.0f);
      checkMatmul(4, 1, 4, m, n, k, flags & 1, flags & 2, 1.0f, -2.0f);
    }
  }
  checkMatmul(3, 3, 3, 150, 140, 160, true, false, 1.0f, 0.0f);
  checkMatmul(0, 1, 1, 3, 4, 5, false, false, 1.0f, 0.0f);
  checkMatmulErrors();
  std::printf("matmul: %d failed\n", failures - before);
}

// ---- conv2d ----

struct Conv {
  int64_t n, cIn, h, w, cOut, kH, kW, sH, sW, pH, pW, dH, dW, groups;
  int64_t oH() const { return (h + 2 * pH - dH * (kH - 1) - 1) / sH + 1; }
  int64_t oW() const { return (w + 2 * pW - dW * (kW - 1) - 1) / sW + 1; }
  std::map<std::string, double> attrs() const {
    return {{"n", n},     {"cIn", cIn},      {"h", h},          {"w", w},          {"cOut", cOut},
            {"kH", kH},   {"kW", kW},        {"strideH", sH},   {"strideW", sW},   {"padH", pH},
            {"padW", pW}, {"dilationH", dH}, {"dilationW", dW}, {"groups", groups}};
  }
  std::string name() const {
    char s[200];
    std::snprintf(s, sizeof s, "n%ld c%ld %ldx%ld -> %ld k%ldx%ld s%ld,%ld p%ld,%ld d%ld,%ld g%ld", (long)n, (long)cIn,
                  (long)h, (long)w, (long)cOut, (long)kH, (long)kW, (long)sH, (long)sW, (long)pH, (long)pW, (long)dH,
                  (long)dW, (long)groups);
    return s;
  }
};

// Calls fn(xIndex, wIndex, outIndex) for every multiply of the convolution.
void forEachTap(const Conv& c, const std::function<void(int64_t, int64_t, int64_t)>& fn) {
  int64_t cInG = c.cIn / c.groups, cOutG = c.cOut / c.groups;
  for (int64_t b = 0; b < c.n; ++b)
    for (int64_t oc = 0; oc < c.cOut; ++oc)
      for (int64_t oy = 0; oy < c.oH(); ++oy)
        for (int64_t ox = 0; ox < c.oW(); ++ox)
          for (int64_t icg = 0; icg < cInG; ++icg)
            for (int64_t ki = 0; ki < c.kH; ++ki)
              for (int64_t kj = 0; kj < c.kW; ++kj) {
                int64_t iy = oy * c.sH - c.pH + ki * c.dH, ix = ox * c.sW - c.pW + kj * c.dW;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                int64_t ic = (oc / cOutG) * cInG + icg;
                fn(((b * c.cIn + ic) * c.h + iy) * c.w + ix, ((oc * cInG + icg) * c.kH + ki) * c.kW + kj,
                   ((b * c.cOut + oc) * c.oH() + oy) * c.oW() + ox);
              }
}

void checkConv(const Conv& c, bool withBias) {
  int64_t xSize = c.n * c.cIn * c.h * c.w, wSize = c.cOut * (c.cIn / c.groups) * c.kH * c.kW;
  int64_t oSize = c.n * c.cOut * c.oH() * c.oW();
  auto x = randomVector(xSize), weight = randomVector(wSize), bias = randomVector(c.cOut),
       gradOut = randomVector(oSize);
  std::vector<double> out(oSize), gradX(xSize), gradW(wSize);
  for (int64_t i = 0; i < oSize; ++i) out[i] = withBias ? bias[(i / (c.oH() * c.oW())) % c.cOut] : 0;
  forEachTap(c, [&](int64_t xi, int64_t wi, int64_t oi) {
    out[oi] += double(x[xi]) * weight[wi];
    gradX[xi] += double(gradOut[oi]) * weight[wi];
    gradW[wi] += double(gradOut[oi]) * x[xi];
  });
  double depth = (c.cIn / c.groups) * c.kH * c.kW;
  std::vector<float> gotOut(oSize, NAN), gotX(xSize, NAN), gotW(wSize, NAN), none;
  Buffer noBias{};
  auto fwd = makeCall("conv2d", {buf(gotOut), buf(x), buf(weight), withBias ? buf(bias) : noBias}, c.attrs());
  deepnode::cpu::conv2d(fwd);
  compare("conv2d " + c.name(), gotOut, out, depth);
  auto bwdData = makeCall("conv2d_backward_data", {buf(gotX), buf(gradOut), buf(weight)}, c.attrs());
  deepnode::cpu::conv2dBackwardData(bwdData);
  compare("conv2d_backward_data " + c.name(), gotX, gradX, c.cOut / c.groups * c.kH * c.kW);
  auto bwdWeight = makeCall("conv2d_backward_weight", {buf(gotW), buf(gradOut), buf(x)}, c.attrs());
  deepnode::cpu::conv2dBackwardWeight(bwdWeight);
  compare("conv2d_backward_weight " + c.name(), gotW, gradW, c.n * c.oH() * c.oW());
}

void checkConvErrors() {
  Conv c{2, 4, 5, 5, 6, 3, 3, 1, 1, 0, 0, 1, 1, 2};
  std::vector<float> out(2 * 6 * 9), x(2 * 4 * 25), w(6 * 2 * 9), bias(6), small(5);
  auto run = [&](std::map<std::string, double> attrs, std::vector<float>& xs) {
    auto call = makeCall("conv2d", {buf(out), buf(xs), buf(w), buf(bias)}, attrs);
    deepnode::cpu::conv2d(call);
  };
  run(c.attrs(), x);  // the valid call must pass
  expectError("conv x size", "ERR_SHAPE", [&] { run(c.attrs(), small); });
  auto bad = c.attrs();
  bad["groups"] = 3;
  expectError("conv groups", "ERR_SHAPE", [&] { run(bad, x); });
  bad = c.attrs();
  bad["kH"] = 9;
  expectError("conv kernel too big", "ERR_SHAPE", [&] { run(bad, x); });
  bad = c.attrs();
  bad["strideH"] = 0;
  expectError("conv stride 0", "ERR_VALUE", [&] { run(bad, x); });
  try {
    run(c.attrs(), small);
  } catch (const deepnode::KernelError& e) {
    std::printf("  message: %s\n", e.what());
  }
}

void checkConvs() {
  int before = failures;
  const Conv cases[] = {
      {2, 3, 7, 9, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1},
      {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1},
      {3, 4, 8, 8, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2},
      {2, 4, 9, 7, 8, 3, 2, 2, 1, 1, 0, 1, 1, 4},
      {2, 6, 11, 10, 9, 3, 3, 2, 3, 2, 1, 2, 1, 3},
      {1, 2, 5, 5, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1},
      {5, 3, 6, 13, 5, 2, 4, 3, 2, 1, 3, 1, 2, 1},
      {4, 8, 12, 12, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8},
      {2, 3, 10, 10, 4, 1, 1, 2, 2, 0, 0, 1, 1, 1},
      {3, 1, 28, 28, 32, 3, 3, 1, 1, 0, 0, 1, 1, 1},
      {2, 32, 26, 26, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1},
      {1, 16, 15, 17, 40, 3, 5, 1, 2, 1, 2, 1, 1, 1},
      {1, 2, 4, 4, 2, 4, 4, 1, 1, 0, 0, 1, 1, 1},
      {7, 2, 3, 3, 3, 2, 2, 1, 1, 1, 1, 3, 3, 1},
      // Columns over 1 MiB an image, made in blocks of output rows (the last one short), with
      // padding rows in the first and last blocks: stride 1, stride 2, and dilated.
      {2, 64, 70, 70, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {1, 128, 90, 91, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1},
      {1, 64, 60, 61, 5, 3, 3, 2, 1, 2, 1, 2, 1, 1},
  };
  for (const Conv& c : cases) {
    checkConv(c, true);
    checkConv(c, false);
  }
  checkConvErrors();
  std::printf("conv2d: %d failed\n", failures - before);
}

// ---- max_pool2d ----

struct Pool {
  int64_t n, c, h, w, kH, kW, sH, sW, pH, pW, dH, dW;
  bool ceil;
  static int64_t size(int64_t in, int64_t k, int64_t p, int64_t s, int64_t d, bool ceil) {
    int64_t out = (in + 2 * p - d * (k - 1) - 1 + (ceil ? s - 1 : 0)) / s + 1;
    if (ceil && (out - 1) * s >= in + p) --out;
    return out;
  }
  int64_t oH() const { return size(h, kH, pH, sH, dH, ceil); }
  int64_t oW() const { return size(w, kW, pW, sW, dW, ceil); }
  std::map<std::string, double> attrs() const {
    return {{"n", n},          {"c", c},          {"h", h},          {"w", w},     {"kH", kH},
            {"kW", kW},        {"strideH", sH},   {"strideW", sW},   {"padH", pH}, {"padW", pW},
            {"dilationH", dH}, {"dilationW", dW}, {"ceilMode", ceil}};
  }
};

void checkPool(const Pool& p, bool withTies) {
  int64_t planes = p.n * p.c, oH = p.oH(), oW = p.oW();
  auto x = randomVector(planes * p.h * p.w);
  if (withTies) {
    for (auto& v : x) v = std::round(v * 2);  // few distinct values: many ties
    x[x.size() / 2] = NAN;
  }
  std::vector<float> want(planes * oH * oW), out(want.size()), gradX(x.size(), 0.0f);
  std::vector<int32_t> wantIdx(want.size()), idx(want.size());
  std::vector<double> wantGradX(x.size(), 0.0);
  auto gradOut = randomVector(want.size());
  for (int64_t q = 0; q < planes; ++q) {
    for (int64_t oy = 0; oy < oH; ++oy) {
      for (int64_t ox = 0; ox < oW; ++ox) {
        float best = -INFINITY;
        int64_t at = -1;
        for (int64_t ki = 0; ki < p.kH; ++ki) {
          for (int64_t kj = 0; kj < p.kW; ++kj) {
            int64_t iy = oy * p.sH - p.pH + ki * p.dH, ix = ox * p.sW - p.pW + kj * p.dW;
            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
            float v = x[(q * p.h + iy) * p.w + ix];
            if (at < 0 || v > best || std::isnan(v)) best = v, at = iy * p.w + ix;
          }
        }
        int64_t o = (q * oH + oy) * oW + ox;
        want[o] = best;
        wantIdx[o] = static_cast<int32_t>(at);
        wantGradX[q * p.h * p.w + at] += gradOut[o];
      }
    }
  }
  auto call = makeCall("max_pool2d", {buf(out), buf(idx, DType::Int32), buf(x)}, p.attrs());
  deepnode::cpu::maxPool2d(call);
  bool same = true;
  for (size_t i = 0; i < want.size(); ++i) {
    bool eq = (std::isnan(want[i]) && std::isnan(out[i])) || want[i] == out[i];
    same = same && eq && idx[i] == wantIdx[i];
  }
  if (!same) {
    ++failures;
    std::printf("FAIL max_pool2d %ldx%ld k%ld,%ld s%ld p%ld d%ld ceil%d\n", (long)p.h, (long)p.w, (long)p.kH,
                (long)p.kW, (long)p.sH, (long)p.pH, (long)p.dH, p.ceil);
  }
  auto back = makeCall("max_pool2d_backward", {buf(gradX), buf(gradOut), buf(idx, DType::Int32)},
                       {{"n", p.n}, {"c", p.c}, {"h", p.h}, {"w", p.w}, {"oH", oH}, {"oW", oW}});
  deepnode::cpu::maxPool2dBackward(back);
  compare("max_pool2d_backward", gradX, wantGradX, 4);
}

void checkPools() {
  int before = failures;
  const Pool cases[] = {
      {2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1, false},
      {2, 3, 9, 7, 2, 2, 2, 2, 0, 0, 1, 1, false},
      {1, 2, 9, 7, 3, 3, 2, 2, 1, 1, 1, 1, true},
      {1, 2, 10, 11, 3, 2, 1, 2, 1, 1, 2, 1, false},
      {3, 1, 5, 5, 3, 3, 3, 3, 1, 1, 1, 1, true},
      {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, false},
      {2, 4, 13, 6, 4, 2, 3, 1, 2, 1, 1, 2, true},
      {64, 64, 24, 24, 2, 2, 2, 2, 0, 0, 1, 1, false},
      // Rows wide enough for several 64-output chunks of the vectorised interior, strides 1 to 3.
      {2, 3, 40, 300, 3, 3, 2, 2, 1, 1, 1, 1, false},
      {1, 2, 20, 401, 3, 3, 2, 3, 1, 1, 2, 2, false},
      {1, 2, 9, 150, 2, 3, 1, 1, 1, 1, 1, 1, true},
  };
  for (const Pool& p : cases) {
    checkPool(p, false);
    checkPool(p, true);
  }
  std::vector<float> out(100), x(100);
  std::vector<int32_t> idx(100);
  Pool bad{1, 1, 10, 10, 2, 2, 2, 2, 2, 0, 1, 1, false};
  expectError("pool padding > kernel/2", "ERR_VALUE", [&] {
    auto call = makeCall("max_pool2d", {buf(out), buf(idx, DType::Int32), buf(x)}, bad.attrs());
    deepnode::cpu::maxPool2d(call);
  });
  Pool good{1, 1, 10, 10, 2, 2, 2, 2, 0, 0, 1, 1, false};
  expectError("pool out size", "ERR_SHAPE", [&] {
    auto call = makeCall("max_pool2d", {buf(out), buf(idx, DType::Int32), buf(x)}, good.attrs());
    deepnode::cpu::maxPool2d(call);
  });
  std::vector<float> gx(100), go(25, 1.0f);
  std::vector<int32_t> badIdx(25, 100);
  expectError("pool backward index", "ERR_INDEX", [&] {
    auto call = makeCall("max_pool2d_backward", {buf(gx), buf(go), buf(badIdx, DType::Int32)},
                         {{"n", 1}, {"c", 1}, {"h", 10}, {"w", 10}, {"oH", 5}, {"oW", 5}});
    deepnode::cpu::maxPool2dBackward(call);
  });
  std::printf("max_pool2d: %d failed\n", failures - before);
}

// ---- timings ----

double bestMs(const std::function<void()>& fn) {
  fn();
  double best = 1e30, total = 0;
  for (int reps = 0; reps < 5 || total < 0.5; ++reps) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best * 1e3;
}

void benchConv(const char* label, const Conv& c) {
  int64_t xSize = c.n * c.cIn * c.h * c.w, wSize = c.cOut * (c.cIn / c.groups) * c.kH * c.kW;
  int64_t oSize = c.n * c.cOut * c.oH() * c.oW();
  auto x = randomVector(xSize), w = randomVector(wSize), bias = randomVector(c.cOut), out = randomVector(oSize);
  auto gx = randomVector(xSize), gw = randomVector(wSize);
  double flops = 2.0 * oSize * wSize / c.cOut;
  auto fwd = makeCall("conv2d", {buf(out), buf(x), buf(w), buf(bias)}, c.attrs());
  auto data = makeCall("conv2d_backward_data", {buf(gx), buf(out), buf(w)}, c.attrs());
  auto weight = makeCall("conv2d_backward_weight", {buf(gw), buf(out), buf(x)}, c.attrs());
  double t[3] = {bestMs([&] { deepnode::cpu::conv2d(fwd); }), bestMs([&] { deepnode::cpu::conv2dBackwardData(data); }),
                 bestMs([&] { deepnode::cpu::conv2dBackwardWeight(weight); })};
  const char* names[3] = {"forward", "backward_data", "backward_weight"};
  for (int i = 0; i < 3; ++i) {
    std::printf("  %-6s %-16s %8.3f ms  %6.1f GFLOP/s\n", label, names[i], t[i], flops / t[i] * 1e-6);
  }
}

void benchPool() {
  Pool p{64, 64, 24, 24, 2, 2, 2, 2, 0, 0, 1, 1, false};
  auto x = randomVector(p.n * p.c * p.h * p.w), out = randomVector(p.n * p.c * 144), gx = randomVector(x.size());
  std::vector<int32_t> idx(out.size());
  auto fwd = makeCall("max_pool2d", {buf(out), buf(idx, DType::Int32), buf(x)}, p.attrs());
  auto back = makeCall("max_pool2d_backward", {buf(gx), buf(out), buf(idx, DType::Int32)},
                       {{"n", 64}, {"c", 64}, {"h", 24}, {"w", 24}, {"oH", 12}, {"oW", 12}});
  std::printf("  pool   forward          %8.3f ms\n", bestMs([&] { deepnode::cpu::maxPool2d(fwd); }));
  std::printf("  pool   backward         %8.3f ms\n", bestMs([&] { deepnode::cpu::maxPool2dBackward(back); }));
}

}  // namespace

int main(int argc, char** argv) {
  bool benchOnly = argc > 1 && std::string(argv[1]) == "bench";
  deepnode::ThreadPool pool(2);
  deepnode::setCurrentPool(&pool);
  if (!benchOnly) {
    checkMatmuls();
    checkConvs();
    checkPools();
  }
  for (int threads : {1, 2}) {
    deepnode::setCurrentPool(threads == 2 ? &pool : nullptr);
    std::printf("MNIST shapes, batch 64, %d thread(s):\n", threads);
    benchConv("conv1", Conv{64, 1, 28, 28, 32, 3, 3, 1, 1, 0, 0, 1, 1, 1});
    benchConv("conv2", Conv{64, 32, 26, 26, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1});
    benchPool();
  }
  std::printf(failures ? "FAILED\n" : "OK\n");
  return failures ? 1 : 0;
}
