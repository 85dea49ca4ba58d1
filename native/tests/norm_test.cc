// Standalone checks of norm.cc (batch_norm, layer_norm and their backward) against naive
// loops in double, on shapes that split across threads, and their error paths.
// Build: g++ -O3 -std=c++17 -Inative native/tests/norm_test.cc native/core/{threadpool,kernel,
//        cpu_features}.cc native/cpu/norm.cc -lpthread
#include <cmath>
#include <cstdlib>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

std::vector<std::pair<std::string, AttrValue>> channels(int64_t n, int64_t c, int64_t inner, bool training,
                                                        double eps) {
  return {{"n", num(n)}, {"c", num(c)}, {"inner", num(inner)}, {"training", flag(training)}, {"eps", num(eps)}};
}

// The statistics, output and gradients of batch norm in double, from the definitions.
struct BatchNormWant {
  std::vector<double> mean, variance, out, gradX, gradWeight, gradBias;
};

BatchNormWant naiveBatchNorm(int64_t n, int64_t c, int64_t inner, const std::vector<float>& x,
                             const std::vector<float>& w, const std::vector<float>& b, const std::vector<float>& g,
                             double eps) {
  BatchNormWant r{std::vector<double>(c),        std::vector<double>(c), std::vector<double>(x.size()),
                  std::vector<double>(x.size()), std::vector<double>(c), std::vector<double>(c)};
  const double count = static_cast<double>(n * inner);
  auto at = [&](int64_t i, int64_t ch, int64_t j) { return (i * c + ch) * inner + j; };
  for (int64_t ch = 0; ch < c; ++ch) {
    double s = 0, q = 0, sg = 0, sgx = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < inner; ++j) s += x[at(i, ch, j)];
    const double m = s / count;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < inner; ++j) q += (x[at(i, ch, j)] - m) * (x[at(i, ch, j)] - m);
    const double inv = 1 / std::sqrt(q / count + eps);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        const double xhat = (x[at(i, ch, j)] - m) * inv;
        r.out[at(i, ch, j)] = xhat * w[ch] + b[ch];
        sg += g[at(i, ch, j)];
        sgx += g[at(i, ch, j)] * xhat;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        const double xhat = (x[at(i, ch, j)] - m) * inv;
        r.gradX[at(i, ch, j)] = w[ch] * inv * (g[at(i, ch, j)] - sg / count - xhat * sgx / count);
      }
    }
    r.mean[ch] = m;
    r.variance[ch] = q / count;
    r.gradWeight[ch] = sgx;
    r.gradBias[ch] = sg;
  }
  return r;
}

void testBatchNormOnce(int64_t n, int64_t c, int64_t inner) {
  const double eps = 1e-5;
  std::vector<float> x = randomFloats(n * c * inner, -2, 6), g = randomFloats(x.size());
  std::vector<float> w = randomFloats(c, 0.5f, 1.5f), b = randomFloats(c);
  BatchNormWant want = naiveBatchNorm(n, c, inner, x, w, b, g, eps);
  std::vector<float> out(x.size()), mean(c), variance(c), gradX(x.size()), gradWeight(c), gradBias(c);
  std::string tag = std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(inner);

  KernelCall f = makeCall("batch_norm", {buf(out), buf(mean), buf(variance), buf(x), buf(w), buf(b)},
                          channels(n, c, inner, true, eps));
  cpu::batchNorm(f);
  allClose(mean, want.mean, 1e-5, 1e-6, "batch_norm mean " + tag);
  allClose(variance, want.variance, 1e-5, 1e-6, "batch_norm variance " + tag);
  allClose(out, want.out, 1e-5, 1e-5, "batch_norm out " + tag);

  KernelCall bw =
      makeCall("batch_norm_backward",
               {buf(gradX), buf(gradWeight), buf(gradBias), buf(g), buf(x), buf(mean), buf(variance), buf(w)},
               channels(n, c, inner, true, eps));
  cpu::batchNormBackward(bw);
  allClose(gradX, want.gradX, 1e-4, 1e-5, "batch_norm_backward gradX " + tag);
  allClose(gradWeight, want.gradWeight, 1e-5, 1e-4, "batch_norm_backward gradWeight " + tag);
  allClose(gradBias, want.gradBias, 1e-5, 1e-4, "batch_norm_backward gradBias " + tag);
}

void testBatchNorm() {
  testBatchNormOnce(2, 3, 1);
  testBatchNormOnce(4, 1, 7);
  testBatchNormOnce(8, 64, 33);    // many channels: split across tasks
  testBatchNormOnce(2, 3, 70000);  // long channels: few tasks, long runs
  testBatchNormOnce(1, 5, 2);
  testBatchNormOnce(256, 700, 1);  // [N, C]: several blocks of channels read as columns
  testBatchNormOnce(9, 100, 15);   // the longest short run, blocks of 34 channels
}

void testLayerNormOnce(int64_t rows, int64_t normSize) {
  const double eps = 1e-5;
  std::vector<float> x = randomFloats(rows * normSize, -1, 9), g = randomFloats(x.size());
  std::vector<float> w = randomFloats(normSize, 0.5f, 1.5f), b = randomFloats(normSize);
  std::vector<double> wantOut(x.size()), wantGx(x.size()), wantGw(normSize), wantGb(normSize), wantMean(rows),
      wantRstd(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * normSize;
    double s = 0, q = 0;
    for (int64_t j = 0; j < normSize; ++j) s += xr[j];
    const double m = s / normSize;
    for (int64_t j = 0; j < normSize; ++j) q += (xr[j] - m) * (xr[j] - m);
    const double inv = 1 / std::sqrt(q / normSize + eps);
    double sh = 0, shx = 0;
    for (int64_t j = 0; j < normSize; ++j) {
      const double xhat = (xr[j] - m) * inv, h = g[r * normSize + j] * w[j];
      wantOut[r * normSize + j] = xhat * w[j] + b[j];
      sh += h;
      shx += h * xhat;
      wantGw[j] += g[r * normSize + j] * xhat;
      wantGb[j] += g[r * normSize + j];
    }
    for (int64_t j = 0; j < normSize; ++j) {
      const double xhat = (xr[j] - m) * inv, h = g[r * normSize + j] * w[j];
      wantGx[r * normSize + j] = inv * (h - sh / normSize - xhat * shx / normSize);
    }
    wantMean[r] = m;
    wantRstd[r] = inv;
  }
  std::vector<float> out(x.size()), mean(rows), rstd(rows), gx(x.size()), gw(normSize), gb(normSize);
  std::string tag = std::to_string(rows) + "x" + std::to_string(normSize);
  std::vector<std::pair<std::string, AttrValue>> attrs = {{"rows", num(rows)}, {"normSize", num(normSize)}};
  auto withEps = attrs;
  withEps.push_back({"eps", num(eps)});
  KernelCall f = makeCall("layer_norm", {buf(out), buf(mean), buf(rstd), buf(x), buf(w), buf(b)}, withEps);
  cpu::layerNorm(f);
  allClose(mean, wantMean, 1e-5, 1e-6, "layer_norm mean " + tag);
  allClose(rstd, wantRstd, 1e-5, 1e-6, "layer_norm rstd " + tag);
  allClose(out, wantOut, 1e-5, 1e-5, "layer_norm out " + tag);
  KernelCall bw =
      makeCall("layer_norm_backward", {buf(gx), buf(gw), buf(gb), buf(g), buf(x), buf(mean), buf(rstd), buf(w)}, attrs);
  cpu::layerNormBackward(bw);
  allClose(gx, wantGx, 1e-4, 1e-5, "layer_norm_backward gradX " + tag);
  allClose(gw, wantGw, 1e-5, 1e-4, "layer_norm_backward gradWeight " + tag);
  allClose(gb, wantGb, 1e-5, 1e-4, "layer_norm_backward gradBias " + tag);
}

void testLayerNorm() {
  testLayerNormOnce(1, 1);
  testLayerNormOnce(3, 7);
  testLayerNormOnce(500, 300);  // 64 row groups summing the weight gradient, uneven ones
  testLayerNormOnce(2, 5000);
  testLayerNormOnce(32, 33);      // eight row groups of four rows, each row vectors and a tail
  testLayerNormOnce(31, 40);      // too few rows for eight groups: the column pass
  testLayerNormOnce(12, 300000);  // rows too long for per-group column sums: the column pass
}

void testErrors() {
  std::vector<float> x(6), out(6), mean(3), variance(3), shortMean(2);
  check(codeOf(cpu::batchNorm, makeCall("batch_norm", {buf(out), buf(shortMean), buf(variance), buf(x)},
                                        channels(2, 3, 1, true, 1e-5))) == "ERR_SHAPE",
        "batch_norm: a short mean buffer is ERR_SHAPE");
  check(codeOf(cpu::batchNorm, makeCall("batch_norm", {buf(out), buf(mean), buf(variance), buf(x)},
                                        channels(2, 3, 1, true, -1))) == "ERR_VALUE",
        "batch_norm: a negative eps is ERR_VALUE");
  check(codeOf(cpu::batchNorm, makeCall("batch_norm", {buf(out), buf(mean), buf(variance), buf(x)},
                                        channels(-2, 3, 1, true, 1e-5))) == "ERR_SHAPE",
        "batch_norm: a negative size is ERR_SHAPE");
  std::vector<double> doubles(6);
  check(codeOf(cpu::layerNorm, makeCall("layer_norm", {buf(out), buf(mean), buf(variance), buf(doubles)},
                                        {{"rows", num(3)}, {"normSize", num(2)}, {"eps", num(1e-5)}})) == "ERR_DTYPE",
        "layer_norm: float64 input is ERR_DTYPE");
}

}  // namespace

int main() {
  const char* threads = std::getenv("DEEPNODE_NUM_THREADS");  // the same override as the addon
  ThreadPool pool(threads ? std::max(1, std::atoi(threads)) : 2);
  setCurrentPool(&pool);
  testBatchNorm();
  testLayerNorm();
  testErrors();
  return finish("norm_test");
}
