// Batch and layer normalisation, forward and backward. Statistics are sums in double over
// two passes (mean, then squared deviations), so a channel of millions of values with a
// large mean keeps its variance; the per-element work is one float multiply-add.
// Batch norm runs one task per channel ([n, c, inner] strided rows); layer norm one task
// per row, and its weight and bias gradients either in the same pass, by groups of rows, or in
// a second one by blocks of columns (see layerNormBackward). The double sums keep their lanes
// in registers through lanes.h.
#include "../core/args/norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"
#include "lanes.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 32 * 1024;  // elements of work per task
constexpr int64_t kColumns = 256;      // columns of a layer-norm weight-gradient task

int64_t grainFor(int64_t workPerItem) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, workPerItem));
}

using args::readRowExtent;
using args::RowExtent;

// ---------------------------------------------------------------------------------------
// Batch norm: x [n, c, inner]; channel ch is n runs of `inner` contiguous values.

struct ChannelExtent : args::ChannelExtent {
  const float* run(const float* base, int64_t i, int64_t ch) const { return base + (i * c + ch) * inner; }
  float* run(float* base, int64_t i, int64_t ch) const { return base + (i * c + ch) * inner; }
};

ChannelExtent readChannelExtent(const KernelCall& call) {
  return {args::readChannelExtent(call)};
}

constexpr int kLanes = 16;  // independent double accumulators (lanes.h), so the sums vectorise
using Lanes = lanes::DoubleLanes<kLanes>;
using lanes::load8;
using lanes::loadDouble8;
using lanes::widen;

DEEPNODE_CLONES double sumRun(const float* __restrict x, int64_t n) {
  Lanes s;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) s.add([&](int k) { return loadDouble8(x + j + 8 * k); });
  double total = s.total();
  for (; j < n; ++j) total += x[j];
  return total;
}

DEEPNODE_CLONES double squaredDeviations(const float* __restrict x, int64_t n, double mean) {
  Lanes s;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    s.add([&](int k) {
      const lanes::Double8 d = loadDouble8(x + j + 8 * k) - mean;
      return d * d;
    });
  }
  double total = s.total();
  for (; j < n; ++j) total += (x[j] - mean) * (x[j] - mean);
  return total;
}

// y = x * scale + shift over a run.
DEEPNODE_CLONES void affineRun(float* __restrict y, const float* __restrict x, int64_t n, float scale, float shift) {
  for (int64_t j = 0; j < n; ++j) y[j] = x[j] * scale + shift;
}

void channelStatistics(const ChannelExtent& e, const float* x, int64_t ch, float& mean, float& variance,
                       const args::RunningStats& running) {
  const int64_t count = e.n * e.inner;
  if (count == 0) return;
  double s = 0;
  for (int64_t i = 0; i < e.n; ++i) s += sumRun(e.run(x, i, ch), e.inner);
  const double m = s / static_cast<double>(count);
  double q = 0;
  for (int64_t i = 0; i < e.n; ++i) q += squaredDeviations(e.run(x, i, ch), e.inner, m);
  mean = static_cast<float>(m);
  variance = static_cast<float>(q / static_cast<double>(count));
  running.update(ch, m, q);
}

// gx = gy * a + xhat * b + c over a run, with xhat = (x - mean) * invStd.
DEEPNODE_CLONES void batchNormGradRun(float* __restrict gx, const float* __restrict gy, const float* __restrict x,
                                      int64_t n, float a, float b, float c, float mean, float invStd) {
  for (int64_t j = 0; j < n; ++j) gx[j] = gy[j] * a + (x[j] - mean) * invStd * b + c;
}

// sum(g) and sum(g * (x - mean)) over a run, in double.
DEEPNODE_CLONES void gradSums(const float* __restrict gy, const float* __restrict x, int64_t n, float mean,
                              double& sumG, double& sumGD) {
  Lanes s, sd;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    s.add([&](int k) { return loadDouble8(gy + j + 8 * k); });
    sd.add([&](int k) { return loadDouble8(gy + j + 8 * k) * widen(load8(x + j + 8 * k) - mean); });
  }
  for (; j < n; ++j) {
    sumG += gy[j];
    sumGD += static_cast<double>(gy[j]) * (x[j] - mean);
  }
  sumG = s.total(sumG);
  sumGD = sd.total(sumGD);
}

// ---------------------------------------------------------------------------------------
// Layer norm: x [rows, normSize].

DEEPNODE_CLONES void layerNormRow(float* __restrict y, const float* __restrict x, const float* __restrict w,
                                  const float* __restrict b, int64_t n, float mean, float rstd) {
  if (w && b) {
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mean) * rstd * w[j] + b[j];
  } else if (w) {
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mean) * rstd * w[j];
  } else {
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mean) * rstd + (b ? b[j] : 0.0f);
  }
}

// One row's first pass: h = g * w (g without a weight) staged in gx, sum(h) and
// sum(h * xhat) in double lanes, and, when colG is not null, the row's terms of the weight
// and bias gradients added to its row group's column sums: colG += g, colGXhat += g * xhat.
// gx must not overlap gy or x.
DEEPNODE_CLONES void layerNormGradSums(float* __restrict gx, const float* __restrict gy, const float* __restrict x,
                                       const float* __restrict w, int64_t n, float mean, float rstd,
                                       double* __restrict colG, double* __restrict colGXhat, double& sumH,
                                       double& sumHX) {
  Lanes s, sx;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    lanes::Float8 h[2], xhat[2];
    for (int k = 0; k < 2; ++k) {
      const int64_t at = j + 8 * k;
      const lanes::Float8 g = load8(gy + at);
      xhat[k] = (load8(x + at) - mean) * rstd;
      h[k] = w ? g * load8(w + at) : g;
      lanes::store8(gx + at, h[k]);
      if (colG) {
        lanes::store8(colG + at, load8(colG + at) + widen(g));
        lanes::store8(colGXhat + at, load8(colGXhat + at) + widen(g) * widen(xhat[k]));
      }
    }
    s.add([&](int k) { return widen(h[k]); });
    sx.add([&](int k) { return widen(h[k]) * widen(xhat[k]); });
  }
  sumH = 0;
  sumHX = 0;
  for (; j < n; ++j) {
    const float g = gy[j], xhat = (x[j] - mean) * rstd, h = w ? g * w[j] : g;
    gx[j] = h;
    sumH += h;
    sumHX += static_cast<double>(h) * xhat;
    if (colG) {
      colG[j] += g;
      colGXhat[j] += static_cast<double>(g) * xhat;
    }
  }
  sumH = s.total(sumH);
  sumHX = sx.total(sumHX);
}

DEEPNODE_CLONES void layerNormGradApply(float* gx, const float* h, const float* __restrict x, int64_t n, float mean,
                                        float rstd, float meanH, float meanHX) {
  for (int64_t j = 0; j < n; ++j) gx[j] = rstd * (h[j] - meanH - (x[j] - mean) * rstd * meanHX);
}

// gx = rstd * (h - mean(h) - xhat * mean(h * xhat)) with h = g * w; h is staged in gx. With
// colG, also adds the row's weight- and bias-gradient terms there (layerNormGradSums).
void layerNormGradRow(float* gx, const float* gy, const float* x, const float* w, int64_t n, float mean, float rstd,
                      double* colG, double* colGXhat) {
  double sumH = 0, sumHX = 0;
  layerNormGradSums(gx, gy, x, w, n, mean, rstd, colG, colGXhat, sumH, sumHX);
  const float meanH = static_cast<float>(sumH / static_cast<double>(n));
  const float meanHX = static_cast<float>(sumHX / static_cast<double>(n));
  layerNormGradApply(gx, gx, x, n, mean, rstd, meanH, meanHX);
}

// ---------------------------------------------------------------------------------------
// Batch norm when each channel's runs are short (inner < kShortRun, e.g. [N, C] input): a
// call per run would cost more than its work, so x is read as rows of c * inner columns,
// and each task owns a block of whole channels, accumulating its columns row by row.

constexpr int64_t kShortRun = 16;
constexpr int64_t kBlockColumns = 512;

struct ColumnBlock {
  int64_t ch0, channels, col0, width;  // channels [ch0, ch0 + channels), their columns
};

// Runs fn(block) over blocks of whole channels of about kBlockColumns columns, in parallel.
template <typename Fn>
void forEachChannelBlock(const ChannelExtent& e, Fn&& fn) {
  const int64_t perBlock = std::max<int64_t>(1, kBlockColumns / std::max<int64_t>(1, e.inner));
  const int64_t blocks = (e.c + perBlock - 1) / perBlock;
  parallelFor(blocks, grainFor(e.n * perBlock * e.inner * 3), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t ch0 = b * perBlock, channels = std::min(perBlock, e.c - ch0);
      fn(ColumnBlock{ch0, channels, ch0 * e.inner, channels * e.inner});
    }
  });
}

// Per-channel sums over the block of f(x[i, col], ch) for every row, in double.
template <typename F>
void blockChannelSums(const ChannelExtent& e, const ColumnBlock& blk, const float* x, double* columns,
                      double* perChannel, F&& f) {
  const int64_t rowLength = e.c * e.inner;
  std::fill(columns, columns + blk.width, 0.0);
  for (int64_t i = 0; i < e.n; ++i) {
    const float* row = x + i * rowLength + blk.col0;
    for (int64_t j = 0; j < blk.width; ++j) columns[j] += f(row[j], blk.ch0 + j / e.inner, j);
  }
  for (int64_t k = 0; k < blk.channels; ++k) {
    double s = 0;
    for (int64_t j = 0; j < e.inner; ++j) s += columns[k * e.inner + j];
    perChannel[k] = s;
  }
}

void batchNormShortRuns(const ChannelExtent& e, bool training, double eps, float* out, float* mean, float* variance,
                        const float* x, const float* weight, const float* bias, const args::RunningStats& running) {
  const double count = static_cast<double>(e.n * e.inner);
  forEachChannelBlock(e, [&](const ColumnBlock& blk) {
    std::vector<double> columns(blk.width), sums(blk.channels);
    std::vector<float> scale(blk.width), shift(blk.width);
    if (training && count > 0) {
      blockChannelSums(e, blk, x, columns.data(), sums.data(), [](float v, int64_t, int64_t) { return double(v); });
      std::vector<double> m(blk.channels);
      for (int64_t k = 0; k < blk.channels; ++k) {
        m[k] = sums[k] / count;
        mean[blk.ch0 + k] = static_cast<float>(m[k]);
      }
      blockChannelSums(e, blk, x, columns.data(), sums.data(), [&](float v, int64_t ch, int64_t) {
        double d = v - m[ch - blk.ch0];
        return d * d;
      });
      for (int64_t k = 0; k < blk.channels; ++k) {
        variance[blk.ch0 + k] = static_cast<float>(sums[k] / count);
        running.update(blk.ch0 + k, m[k], sums[k]);
      }
    }
    for (int64_t j = 0; j < blk.width; ++j) {
      const int64_t ch = blk.ch0 + j / e.inner;
      const double invStd = 1.0 / std::sqrt(static_cast<double>(variance[ch]) + eps);
      const double sc = invStd * (weight ? weight[ch] : 1.0f);
      scale[j] = static_cast<float>(sc);
      shift[j] = static_cast<float>((bias ? bias[ch] : 0.0f) - mean[ch] * sc);
    }
    const int64_t rowLength = e.c * e.inner;
    for (int64_t i = 0; i < e.n; ++i) {
      const float* xr = x + i * rowLength + blk.col0;
      float* yr = out + i * rowLength + blk.col0;
      for (int64_t j = 0; j < blk.width; ++j) yr[j] = xr[j] * scale[j] + shift[j];
    }
  });
}

using args::BatchNormGradArgs;

void batchNormBackwardShortRuns(const ChannelExtent& e, const BatchNormGradArgs& a) {
  const double count = static_cast<double>(e.n * e.inner);
  const int64_t rowLength = e.c * e.inner;
  forEachChannelBlock(e, [&](const ColumnBlock& blk) {
    // sum(g) and sum(g * (x - mean)) per column, over the rows of g and x together
    std::vector<double> colG(blk.width, 0.0), colGD(blk.width, 0.0);
    for (int64_t i = 0; i < e.n; ++i) {
      const float* g = a.gradOut + i * rowLength + blk.col0;
      const float* xr = a.x + i * rowLength + blk.col0;
      for (int64_t j = 0; j < blk.width; ++j) {
        colG[j] += g[j];
        colGD[j] += static_cast<double>(g[j]) * (xr[j] - a.mean[blk.ch0 + j / e.inner]);
      }
    }
    std::vector<float> ga(blk.width), gb(blk.width), gc(blk.width), invStds(blk.width), means(blk.width);
    for (int64_t k = 0; k < blk.channels; ++k) {
      const int64_t ch = blk.ch0 + k;
      double sg = 0, sgd = 0;
      for (int64_t j = 0; j < e.inner; ++j) {
        sg += colG[k * e.inner + j];
        sgd += colGD[k * e.inner + j];
      }
      const double invStd = 1.0 / std::sqrt(static_cast<double>(a.variance[ch]) + a.eps);
      const double sumGX = sgd * invStd;
      if (a.gradWeight) a.gradWeight[ch] = static_cast<float>(sumGX);
      if (a.gradBias) a.gradBias[ch] = static_cast<float>(sg);
      const double scale = invStd * (a.weight ? a.weight[ch] : 1.0f);
      for (int64_t j = 0; j < e.inner; ++j) {
        const int64_t col = k * e.inner + j;
        ga[col] = static_cast<float>(scale);
        gb[col] = a.training ? static_cast<float>(-scale * sumGX / count) : 0.0f;
        gc[col] = a.training ? static_cast<float>(-scale * sg / count) : 0.0f;
        invStds[col] = static_cast<float>(invStd);
        means[col] = a.mean[ch];
      }
    }
    for (int64_t i = 0; i < e.n; ++i) {
      const float* g = a.gradOut + i * rowLength + blk.col0;
      const float* xr = a.x + i * rowLength + blk.col0;
      float* gx = a.gradX + i * rowLength + blk.col0;
      for (int64_t j = 0; j < blk.width; ++j) gx[j] = g[j] * ga[j] + (xr[j] - means[j]) * invStds[j] * gb[j] + gc[j];
    }
  });
}

}  // namespace

void batchNorm(KernelCall& call) {
  ChannelExtent e = readChannelExtent(call);
  const bool training = call.flag("training", false);
  const args::BatchNormArgs a = args::readBatchNorm(call, e);
  float *out = a.out, *mean = a.mean, *variance = a.variance;
  const float *x = a.x, *weight = a.weight, *bias = a.bias;
  const double eps = a.eps;
  const args::RunningStats running = args::readRunningStats(call, e, training);
  if (e.inner < kShortRun) return batchNormShortRuns(e, training, eps, out, mean, variance, x, weight, bias, running);

  parallelFor(e.c, grainFor(e.n * e.inner), [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      if (training) channelStatistics(e, x, ch, mean[ch], variance[ch], running);
      const double invStd = 1.0 / std::sqrt(static_cast<double>(variance[ch]) + eps);
      const double scale = invStd * (weight ? weight[ch] : 1.0f);
      const double shift = (bias ? bias[ch] : 0.0f) - mean[ch] * scale;
      for (int64_t i = 0; i < e.n; ++i) {
        affineRun(e.run(out, i, ch), e.run(x, i, ch), e.inner, static_cast<float>(scale), static_cast<float>(shift));
      }
    }
  });
}

void batchNormBackward(KernelCall& call) {
  ChannelExtent e = readChannelExtent(call);
  const BatchNormGradArgs a = args::readBatchNormBackward(call, e, call.flag("training", false));
  if (e.inner < kShortRun) return batchNormBackwardShortRuns(e, a);
  float *gradX = a.gradX, *gradWeight = a.gradWeight, *gradBias = a.gradBias;
  const float *gradOut = a.gradOut, *x = a.x, *mean = a.mean, *variance = a.variance, *weight = a.weight;
  const bool training = a.training;
  const double eps = a.eps;

  parallelFor(e.c, grainFor(2 * e.n * e.inner), [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      const double invStd = 1.0 / std::sqrt(static_cast<double>(variance[ch]) + eps);
      double sumG = 0, sumGD = 0;  // sum(g), sum(g * (x - mean))
      for (int64_t i = 0; i < e.n; ++i)
        gradSums(e.run(gradOut, i, ch), e.run(x, i, ch), e.inner, mean[ch], sumG, sumGD);
      const double sumGX = sumGD * invStd;  // sum(g * xhat)
      if (gradWeight) gradWeight[ch] = static_cast<float>(sumGX);
      if (gradBias) gradBias[ch] = static_cast<float>(sumG);
      const double scale = invStd * (weight ? weight[ch] : 1.0f);
      const double count = static_cast<double>(e.n * e.inner);
      // training: gx = scale * (g - sumG / count - xhat * sumGX / count)
      const float b = training ? static_cast<float>(-scale * sumGX / count) : 0.0f;
      const float c = training ? static_cast<float>(-scale * sumG / count) : 0.0f;
      for (int64_t i = 0; i < e.n; ++i) {
        batchNormGradRun(e.run(gradX, i, ch), e.run(gradOut, i, ch), e.run(x, i, ch), e.inner,
                         static_cast<float>(scale), b, c, mean[ch], static_cast<float>(invStd));
      }
    }
  });
}

void layerNorm(KernelCall& call) {
  RowExtent e = readRowExtent(call);
  const args::LayerNormArgs a = args::readLayerNorm(call, e);
  float *out = a.out, *mean = a.mean, *rstd = a.rstd;
  const float *x = a.x, *weight = a.weight, *bias = a.bias;
  const double eps = a.eps;
  if (e.normSize == 0) return;

  parallelFor(e.rows, grainFor(3 * e.normSize), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * e.normSize;
      const double m = sumRun(xr, e.normSize) / static_cast<double>(e.normSize);
      const double var = squaredDeviations(xr, e.normSize, m) / static_cast<double>(e.normSize);
      mean[r] = static_cast<float>(m);
      rstd[r] = static_cast<float>(1.0 / std::sqrt(var + eps));
      layerNormRow(out + r * e.normSize, xr, weight, bias, e.normSize, mean[r], rstd[r]);
    }
  });
}

// The weight and bias gradients sum over rows. Where there are enough rows and they are not
// too long, the rows are split into up to kRowGroups groups of at least kMinGroupRows, their
// number set by the shape alone so that the sums do not depend on the thread count; each group
// adds its rows' terms into column sums of its own while the row is in cache, and the groups'
// sums are added in group order. Otherwise a second pass reads gradOut and x again, one task
// per block of columns.
constexpr int64_t kRowGroups = 64;
constexpr int64_t kMinRowGroups = 8;
constexpr int64_t kMinGroupRows = 4;
constexpr int64_t kColumnSumBytes = int64_t{32} << 20;  // the groups' column sums, at most

void layerNormColumnPass(const RowExtent& e, const args::LayerNormGradArgs& a) {
  const int64_t blocks = (e.normSize + kColumns - 1) / kColumns;
  parallelFor(blocks, grainFor(2 * e.rows * kColumns), [&](int64_t begin, int64_t end) {
    double sumGX[kColumns], sumG[kColumns];
    for (int64_t block = begin; block < end; ++block) {
      const int64_t c0 = block * kColumns, width = std::min(kColumns, e.normSize - c0);
      std::fill(sumGX, sumGX + width, 0.0);
      std::fill(sumG, sumG + width, 0.0);
      for (int64_t r = 0; r < e.rows; ++r) {
        const float* g = a.gradOut + r * e.normSize + c0;
        const float* xr = a.x + r * e.normSize + c0;
        for (int64_t j = 0; j < width; ++j) {
          sumGX[j] += static_cast<double>(g[j]) * ((xr[j] - a.mean[r]) * a.rstd[r]);
          sumG[j] += g[j];
        }
      }
      for (int64_t j = 0; j < width; ++j) {
        if (a.gradWeight) a.gradWeight[c0 + j] = static_cast<float>(sumGX[j]);
        if (a.gradBias) a.gradBias[c0 + j] = static_cast<float>(sumG[j]);
      }
    }
  });
}

void layerNormBackward(KernelCall& call) {
  RowExtent e = readRowExtent(call);
  const args::LayerNormGradArgs a = args::readLayerNormBackward(call, e);
  const int64_t n = e.normSize;
  if (n == 0) return;
  auto row = [&](int64_t r, double* colG, double* colGXhat) {
    layerNormGradRow(a.gradX + r * n, a.gradOut + r * n, a.x + r * n, a.weight, n, a.mean[r], a.rstd[r], colG,
                     colGXhat);
  };
  const bool paramGrads = a.gradWeight || a.gradBias;
  const int64_t groupSumBytes = 2 * n * int64_t{sizeof(double)};
  const int64_t groups = std::min({e.rows / kMinGroupRows, kRowGroups, kColumnSumBytes / groupSumBytes});
  if (!paramGrads || groups < kMinRowGroups) {
    parallelFor(e.rows, grainFor(4 * n), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) row(r, nullptr, nullptr);
    });
    if (paramGrads) layerNormColumnPass(e, a);
    return;
  }
  // Per group: colG, then colGXhat; each group's task clears its own.
  std::unique_ptr<double[]> sums(new double[static_cast<size_t>(2 * groups * n)]);
  parallelFor(groups, grainFor(6 * n * (e.rows / groups)), [&](int64_t begin, int64_t end) {
    for (int64_t group = begin; group < end; ++group) {
      double* colG = sums.get() + 2 * group * n;
      std::fill(colG, colG + 2 * n, 0.0);
      for (int64_t r = group * e.rows / groups; r < (group + 1) * e.rows / groups; ++r) row(r, colG, colG + n);
    }
  });
  parallelFor(n, grainFor(2 * groups), [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      double sumG = 0, sumGXhat = 0;
      for (int64_t group = 0; group < groups; ++group) {
        sumG += sums[2 * group * n + j];
        sumGXhat += sums[(2 * group + 1) * n + j];
      }
      if (a.gradWeight) a.gradWeight[j] = static_cast<float>(sumGXhat);
      if (a.gradBias) a.gradBias[j] = static_cast<float>(sumG);
    }
  });
}

}  // namespace deepnode::cpu
