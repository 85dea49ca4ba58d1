// Batch and layer normalisation, forward and backward. Statistics are sums in double over
// two passes (mean, then squared deviations), so a channel of millions of values with a
// large mean keeps its variance; the per-element work is one float multiply-add.
// Batch norm runs one task per channel ([n, c, inner] strided rows); layer norm one task
// per row, and its weight and bias gradients one task per block of columns.
#include "../core/args/norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"

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

constexpr int kLanes = 16;  // independent double accumulators, so the sums vectorise

DEEPNODE_CLONES double sumRun(const float* __restrict x, int64_t n) {
  double lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += x[j + l];
  }
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += lanes[l];
  for (; j < n; ++j) s += x[j];
  return s;
}

DEEPNODE_CLONES double squaredDeviations(const float* __restrict x, int64_t n, double mean) {
  double lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      double d = x[j + l] - mean;
      lanes[l] += d * d;
    }
  }
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += lanes[l];
  for (; j < n; ++j) s += (x[j] - mean) * (x[j] - mean);
  return s;
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
  double s[kLanes] = {}, sd[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      s[l] += gy[j + l];
      sd[l] += static_cast<double>(gy[j + l]) * (x[j + l] - mean);
    }
  }
  for (; j < n; ++j) {
    sumG += gy[j];
    sumGD += static_cast<double>(gy[j]) * (x[j] - mean);
  }
  for (int l = 0; l < kLanes; ++l) {
    sumG += s[l];
    sumGD += sd[l];
  }
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

// h = g * w (g when there is no weight) over a row.
DEEPNODE_CLONES void scaledGrad(float* __restrict h, const float* __restrict g, const float* __restrict w, int64_t n) {
  for (int64_t j = 0; j < n; ++j) h[j] = w ? g[j] * w[j] : g[j];
}

// sum(h) and sum(h * xhat) over a row, in double lanes.
DEEPNODE_CLONES void rowSums(const float* __restrict h, const float* __restrict x, int64_t n, float mean, float rstd,
                             double& sumH, double& sumHX) {
  double s[kLanes] = {}, sx[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      s[l] += h[j + l];
      sx[l] += static_cast<double>(h[j + l]) * ((x[j + l] - mean) * rstd);
    }
  }
  sumH = 0;
  sumHX = 0;
  for (; j < n; ++j) {
    sumH += h[j];
    sumHX += static_cast<double>(h[j]) * ((x[j] - mean) * rstd);
  }
  for (int l = 0; l < kLanes; ++l) {
    sumH += s[l];
    sumHX += sx[l];
  }
}

DEEPNODE_CLONES void layerNormGradApply(float* gx, const float* h, const float* __restrict x, int64_t n, float mean,
                                        float rstd, float meanH, float meanHX) {
  for (int64_t j = 0; j < n; ++j) gx[j] = rstd * (h[j] - meanH - (x[j] - mean) * rstd * meanHX);
}

// gx = rstd * (h - mean(h) - xhat * mean(h * xhat)) with h = g * w; h is staged in gx.
void layerNormGradRow(float* gx, const float* gy, const float* x, const float* w, int64_t n, float mean, float rstd) {
  scaledGrad(gx, gy, w, n);
  double sumH = 0, sumHX = 0;
  rowSums(gx, x, n, mean, rstd, sumH, sumHX);
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

void layerNormBackward(KernelCall& call) {
  RowExtent e = readRowExtent(call);
  const args::LayerNormGradArgs a = args::readLayerNormBackward(call, e);
  float *gradX = a.gradX, *gradWeight = a.gradWeight, *gradBias = a.gradBias;
  const float *gradOut = a.gradOut, *x = a.x, *mean = a.mean, *rstd = a.rstd, *weight = a.weight;
  if (e.normSize == 0) return;

  parallelFor(e.rows, grainFor(4 * e.normSize), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t base = r * e.normSize;
      layerNormGradRow(gradX + base, gradOut + base, x + base, weight, e.normSize, mean[r], rstd[r]);
    }
  });
  if (!gradWeight && !gradBias) return;
  const int64_t blocks = (e.normSize + kColumns - 1) / kColumns;
  parallelFor(blocks, grainFor(2 * e.rows * kColumns), [&](int64_t begin, int64_t end) {
    double sumGX[kColumns], sumG[kColumns];
    for (int64_t block = begin; block < end; ++block) {
      const int64_t c0 = block * kColumns, width = std::min(kColumns, e.normSize - c0);
      std::fill(sumGX, sumGX + width, 0.0);
      std::fill(sumG, sumG + width, 0.0);
      for (int64_t r = 0; r < e.rows; ++r) {
        const float* g = gradOut + r * e.normSize + c0;
        const float* xr = x + r * e.normSize + c0;
        for (int64_t j = 0; j < width; ++j) {
          sumGX[j] += static_cast<double>(g[j]) * ((xr[j] - mean[r]) * rstd[r]);
          sumG[j] += g[j];
        }
      }
      for (int64_t j = 0; j < width; ++j) {
        if (gradWeight) gradWeight[c0 + j] = static_cast<float>(sumGX[j]);
        if (gradBias) gradBias[c0 + j] = static_cast<float>(sumG[j]);
      }
    }
  });
}

}  // namespace deepnode::cpu
