// Batch and layer normalisation, forward and backward, on CUDA, with the cpu kernels'
// buffers, attributes, checks and arithmetic: statistics are double sums over two passes
// (mean, then squared deviations), per-channel or per-row coefficients are computed once
// in double, and the per-element work is float. Every sum is a red::segmentedReduce
// (chunked, merged in order), so a channel of millions of values is parallel and the
// result does not depend on scheduling.
#include <math.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "../../core/args/norm.h"
#include "reductions.h"

namespace deepnode::cuda {
namespace red_norm {

using namespace red;

using args::readRowExtent;
using args::RowExtent;

// ---------------------------------------------------------------------------------------
// Batch norm: x [n, c, inner]; channel ch is n runs of `inner` contiguous values.

struct Channels : args::ChannelExtent {
  DEEPNODE_HD int64_t count() const { return n * inner; }
  // Offset of the r-th value of channel ch.
  DEEPNODE_HD int64_t at(int64_t ch, int64_t r) const {
    return inner == 1 ? r * c + ch : (r / inner * c + ch) * inner + r % inner;
  }
  DEEPNODE_HD int64_t channelOf(int64_t k) const { return k / inner % c; }
};

Channels readChannels(const KernelCall& call) {
  return {args::readChannelExtent(call)};
}

// mean and variance of each channel (biased), through a double mean in m, and the running
// statistics' update (args::RunningStats) as the variance is stored.
void channelStatistics(const Channels& e, const float* x, float* mean, float* variance, double* m,
                       args::RunningStats running) {
  const double count = static_cast<double>(e.count());
  segmentedReduce<SumDouble>(
      "batch_norm", e.c, e.count(), [=] DEEPNODE_HD(int64_t ch, int64_t r) { return double(x[e.at(ch, r)]); },
      [=] DEEPNODE_HD(int64_t ch, double s) { m[ch] = s / count; });
  segmentedReduce<SumDouble>(
      "batch_norm", e.c, e.count(),
      [=] DEEPNODE_HD(int64_t ch, int64_t r) {
        const double d = x[e.at(ch, r)] - m[ch];
        return d * d;
      },
      [=] DEEPNODE_HD(int64_t ch, double q) {
        mean[ch] = static_cast<float>(m[ch]);
        variance[ch] = static_cast<float>(q / count);
        running.update(ch, m[ch], q);
      });
}

using args::BatchNormArgs;

// y = x * scale + shift with scale = w / sqrt(variance + eps), shift = b - mean * scale.
void batchNormApply(const Channels& e, const BatchNormArgs& a, float* coefficients) {
  forEach("batch_norm", e.c, [=] DEEPNODE_HD(int64_t ch) {
    const double invStd = 1.0 / ::sqrt(static_cast<double>(a.variance[ch]) + a.eps);
    const double scale = invStd * (a.weight ? a.weight[ch] : 1.0f);
    coefficients[2 * ch] = static_cast<float>(scale);
    coefficients[2 * ch + 1] = static_cast<float>((a.bias ? a.bias[ch] : 0.0f) - a.mean[ch] * scale);
  });
  forEach("batch_norm", e.total, [=] DEEPNODE_HD(int64_t k) {
    const int64_t ch = e.channelOf(k);
    a.out[k] = a.x[k] * coefficients[2 * ch] + coefficients[2 * ch + 1];
  });
}

using args::BatchNormGradArgs;

// Per channel: sum(g) and sum(g * (x - mean)), then the weight and bias gradients and the
// coefficients of gx = g * a + xhat * b + c (with invStd, four floats per channel).
void batchNormGradCoefficients(const Channels& e, const BatchNormGradArgs& a, float* coef) {
  const double count = static_cast<double>(e.count());
  segmentedReduce<SumTwo>(
      "batch_norm_backward", e.c, e.count(),
      [=] DEEPNODE_HD(int64_t ch, int64_t r) {
        const float g = a.gradOut[e.at(ch, r)];
        return TwoSums{g, static_cast<double>(g) * (a.x[e.at(ch, r)] - a.mean[ch])};
      },
      [=] DEEPNODE_HD(int64_t ch, TwoSums s) {
        const double invStd = 1.0 / ::sqrt(static_cast<double>(a.variance[ch]) + a.eps);
        const double sumGX = s.b * invStd;
        if (a.gradWeight) a.gradWeight[ch] = static_cast<float>(sumGX);
        if (a.gradBias) a.gradBias[ch] = static_cast<float>(s.a);
        const double scale = invStd * (a.weight ? a.weight[ch] : 1.0f);
        coef[4 * ch] = static_cast<float>(scale);
        coef[4 * ch + 1] = a.training ? static_cast<float>(-scale * sumGX / count) : 0.0f;
        coef[4 * ch + 2] = a.training ? static_cast<float>(-scale * s.a / count) : 0.0f;
        coef[4 * ch + 3] = static_cast<float>(invStd);
      });
}

void batchNormGradApply(const Channels& e, const BatchNormGradArgs& a, const float* coef) {
  forEach("batch_norm_backward", e.total, [=] DEEPNODE_HD(int64_t k) {
    const float* cf = coef + 4 * e.channelOf(k);
    a.gradX[k] = a.gradOut[k] * cf[0] + (a.x[k] - a.mean[e.channelOf(k)]) * cf[3] * cf[1] + cf[2];
  });
}

// ---------------------------------------------------------------------------------------
// Layer norm: x [rows, normSize].

using args::LayerNormArgs;

// mean and 1 / sqrt(variance + eps) of each row, through a double mean in m.
void rowStatistics(const RowExtent& e, const LayerNormArgs& a, double* m) {
  const int64_t n = e.normSize;
  segmentedReduce<SumDouble>(
      "layer_norm", e.rows, n, [=] DEEPNODE_HD(int64_t r, int64_t j) { return double(a.x[r * n + j]); },
      [=] DEEPNODE_HD(int64_t r, double s) { m[r] = s / static_cast<double>(n); }, Layout::Adjacent);
  segmentedReduce<SumDouble>(
      "layer_norm", e.rows, n,
      [=] DEEPNODE_HD(int64_t r, int64_t j) {
        const double d = a.x[r * n + j] - m[r];
        return d * d;
      },
      [=] DEEPNODE_HD(int64_t r, double q) {
        a.mean[r] = static_cast<float>(m[r]);
        a.rstd[r] = static_cast<float>(1.0 / ::sqrt(q / static_cast<double>(n) + a.eps));
      },
      Layout::Adjacent);
}

void layerNormApply(const RowExtent& e, const LayerNormArgs& a) {
  const int64_t n = e.normSize;
  forEach("layer_norm", e.total, [=] DEEPNODE_HD(int64_t k) {
    const int64_t r = k / n, j = k % n;
    const float xhat = (a.x[k] - a.mean[r]) * a.rstd[r];
    if (a.weight)
      a.out[k] = a.bias ? xhat * a.weight[j] + a.bias[j] : xhat * a.weight[j];
    else
      a.out[k] = xhat + (a.bias ? a.bias[j] : 0.0f);
  });
}

using args::LayerNormGradArgs;

// gx = rstd * (h - mean(h) - xhat * mean(h * xhat)) with h = g * w (g without weight).
void layerNormGradX(const RowExtent& e, const LayerNormGradArgs& a, float* means) {
  const int64_t n = e.normSize;
  segmentedReduce<SumTwo>(
      "layer_norm_backward", e.rows, n,
      [=] DEEPNODE_HD(int64_t r, int64_t j) {
        const int64_t k = r * n + j;
        const float h = a.weight ? a.gradOut[k] * a.weight[j] : a.gradOut[k];
        return TwoSums{h, static_cast<double>(h) * ((a.x[k] - a.mean[r]) * a.rstd[r])};
      },
      [=] DEEPNODE_HD(int64_t r, TwoSums s) {
        means[2 * r] = static_cast<float>(s.a / static_cast<double>(n));
        means[2 * r + 1] = static_cast<float>(s.b / static_cast<double>(n));
      },
      Layout::Adjacent);
  forEach("layer_norm_backward", e.total, [=] DEEPNODE_HD(int64_t k) {
    const int64_t r = k / n, j = k % n;
    const float h = a.weight ? a.gradOut[k] * a.weight[j] : a.gradOut[k];
    const float rstd = a.rstd[r], d = a.x[k] - a.mean[r];
    a.gradX[k] = rstd * (h - means[2 * r] - d * rstd * means[2 * r + 1]);
  });
}

// gradWeight = sum over rows of g * xhat, gradBias = sum of g, per column.
void layerNormGradParameters(const RowExtent& e, const LayerNormGradArgs& a) {
  const int64_t n = e.normSize;
  segmentedReduce<SumTwo>(
      "layer_norm_backward", n, e.rows,
      [=] DEEPNODE_HD(int64_t j, int64_t r) {
        const int64_t k = r * n + j;
        const float g = a.gradOut[k];
        return TwoSums{static_cast<double>(g) * ((a.x[k] - a.mean[r]) * a.rstd[r]), g};
      },
      [=] DEEPNODE_HD(int64_t j, TwoSums s) {
        if (a.gradWeight) a.gradWeight[j] = static_cast<float>(s.a);
        if (a.gradBias) a.gradBias[j] = static_cast<float>(s.b);
      });
}

void batchNorm(KernelCall& call) {
  Channels e = readChannels(call);
  const bool training = call.flag("training", false);
  BatchNormArgs a = args::readBatchNorm(call, e);
  const args::RunningStats running = args::readRunningStats(call, e, training);
  if (e.c == 0) return;
  if (training && e.count() > 0) {
    Scratch m(static_cast<size_t>(e.c) * sizeof(double));
    channelStatistics(e, a.x, a.mean, a.variance, m.as<double>(), running);
  }
  Scratch coefficients(static_cast<size_t>(2 * e.c) * sizeof(float));
  batchNormApply(e, a, coefficients.as<float>());
}

void batchNormBackward(KernelCall& call) {
  Channels e = readChannels(call);
  BatchNormGradArgs a = args::readBatchNormBackward(call, e, call.flag("training", false));
  if (e.c == 0) return;
  Scratch coef(static_cast<size_t>(4 * e.c) * sizeof(float));
  batchNormGradCoefficients(e, a, coef.as<float>());
  batchNormGradApply(e, a, coef.as<float>());
}

void layerNorm(KernelCall& call) {
  RowExtent e = readRowExtent(call);
  LayerNormArgs a = args::readLayerNorm(call, e);
  if (e.normSize == 0 || e.rows == 0) return;
  Scratch m(static_cast<size_t>(e.rows) * sizeof(double));
  rowStatistics(e, a, m.as<double>());
  layerNormApply(e, a);
}

void layerNormBackward(KernelCall& call) {
  RowExtent e = readRowExtent(call);
  LayerNormGradArgs a = args::readLayerNormBackward(call, e);
  if (e.normSize == 0) return;
  if (e.rows > 0) {
    Scratch means(static_cast<size_t>(2 * e.rows) * sizeof(float));
    layerNormGradX(e, a, means.as<float>());
  }
  if (a.gradWeight || a.gradBias) layerNormGradParameters(e, a);
}

}  // namespace red_norm

void registerNormKernels(KernelTable& table) {
  table["batch_norm"] = red_norm::batchNorm;
  table["batch_norm_backward"] = red_norm::batchNormBackward;
  table["layer_norm"] = red_norm::layerNorm;
  table["layer_norm_backward"] = red_norm::layerNormBackward;
}

}  // namespace deepnode::cuda
