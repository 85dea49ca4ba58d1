// The normalisation family's attributes and buffers, read the same way by the cpu kernels
// and the CUDA kernels: sizes checked to be non-negative and to fit, eps, and float32
// buffers of an expected size (optional ones may be absent).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "../hd.h"
#include "../kernel.h"

namespace deepnode::args {

// product = the product of sizes, after checking each is non-negative and it fits.
inline void checkNonNegative(const KernelCall& call, std::initializer_list<int64_t> sizes, int64_t& product) {
  product = 1;
  for (int64_t s : sizes) {
    if (s < 0 || __builtin_mul_overflow(product, s, &product)) {
      call.fail("ERR_SHAPE", "sizes must be non-negative and not too large");
    }
  }
}

inline double readEps(const KernelCall& call) {
  double eps = call.number("eps");
  if (!(eps >= 0)) call.fail("ERR_VALUE", "eps must be >= 0, got " + numberText(eps));
  return eps;
}

// Float buffer `index` of `size` elements.
inline float* floats(const KernelCall& call, size_t index, const char* role, int64_t size) {
  float* data = call.buffer(index, role, DType::Float32).as<float>();
  call.expectSize(index, role, size);
  return data;
}

// An optional float buffer of `size` elements, or null.
inline float* optionalFloats(const KernelCall& call, size_t index, const char* role, int64_t size) {
  if (!call.hasBuffer(index)) return nullptr;
  return floats(call, index, role, size);
}

// Batch norm: x [n, c, inner]; channel ch is n runs of `inner` contiguous values.
struct ChannelExtent {
  int64_t n, c, inner, total;
};

inline ChannelExtent readChannelExtent(const KernelCall& call) {
  ChannelExtent e{call.integer("n"), call.integer("c"), call.integer("inner"), 0};
  checkNonNegative(call, {e.n, e.c, e.inner}, e.total);
  return e;
}

// Layer norm: x [rows, normSize].
struct RowExtent {
  int64_t rows, normSize, total;
};

inline RowExtent readRowExtent(const KernelCall& call) {
  RowExtent e{call.integer("rows"), call.integer("normSize"), 0};
  checkNonNegative(call, {e.rows, e.normSize}, e.total);
  return e;
}

// The forward's buffers, the same for batch and layer norm: out (0) and x (3) of `total`
// elements, mean and `spread` (variance or rstd) of `statistics` (1, 2), optional weight
// and bias of `parameters` (4, 5); eps is read first.
struct BatchNormArgs {
  float *out, *mean, *variance;
  const float *x, *weight, *bias;
  double eps;
};

struct LayerNormArgs {
  float *out, *mean, *rstd;
  const float *x, *weight, *bias;
  double eps;
};

template <typename Args>
Args readNormForward(const KernelCall& call, const char* spread, int64_t total, int64_t statistics,
                     int64_t parameters) {
  const double eps = readEps(call);
  return Args{floats(call, 0, "out", total),
              floats(call, 1, "mean", statistics),
              floats(call, 2, spread, statistics),
              floats(call, 3, "x", total),
              optionalFloats(call, 4, "weight", parameters),
              optionalFloats(call, 5, "bias", parameters),
              eps};
}

inline BatchNormArgs readBatchNorm(const KernelCall& call, const ChannelExtent& e) {
  return readNormForward<BatchNormArgs>(call, "variance", e.total, e.c, e.c);
}

// Batch norm's running statistics, optional buffers 6 (runningMean) and 7 (runningVar) of c
// elements, which training moves toward the batch's mean and unbiased variance in the same
// call: running = (1 - momentum) * running + momentum * statistic, in double from the
// double statistics and rounded once. (PyTorch's cpu update is not that: it rounds the batch
// mean to float32 and moves the running mean in float32 arithmetic, so the two agree to
// rounding, not bit for bit.) A channel of fewer than two values leaves them as they are.
struct RunningStats {
  float *mean, *variance;
  double momentum;
  double count;  // values per channel

  // The channel's update, from its double mean and sum of squared deviations.
  DEEPNODE_HD void update(int64_t ch, double m, double squares) const {
    if (count < 2) return;
    if (mean != nullptr) mean[ch] = static_cast<float>((1 - momentum) * mean[ch] + momentum * m);
    if (variance != nullptr) {
      const double unbiased = squares / (count - 1);
      variance[ch] = static_cast<float>((1 - momentum) * variance[ch] + momentum * unbiased);
    }
  }
};

inline RunningStats readRunningStats(const KernelCall& call, const ChannelExtent& e, bool training) {
  RunningStats r{optionalFloats(call, 6, "runningMean", e.c), optionalFloats(call, 7, "runningVar", e.c), 0,
                 static_cast<double>(e.n * e.inner)};
  if (r.mean == nullptr && r.variance == nullptr) return r;
  if (!training) call.fail("ERR_VALUE", "running statistics are updated only when training");
  r.momentum = call.number("momentum");
  if (!(r.momentum >= 0 && r.momentum <= 1))
    call.fail("ERR_VALUE", "momentum must be in [0, 1], got " + numberText(r.momentum));
  return r;
}

inline LayerNormArgs readLayerNorm(const KernelCall& call, const RowExtent& e) {
  return readNormForward<LayerNormArgs>(call, "rstd", e.total, e.rows, e.normSize);
}

// The backward's buffers, the same for batch and layer norm: gradX (0), gradOut and x (3,
// 4) of `total` elements, optional gradWeight and gradBias (1, 2) and weight (7) of
// `parameters`, the forward's mean and `spread` (5, 6) of `statistics`; `extra` fills the
// fields after them.
struct BatchNormGradArgs {
  float *gradX, *gradWeight, *gradBias;
  const float *gradOut, *x, *mean, *variance, *weight;
  bool training;
  double eps;
};

struct LayerNormGradArgs {
  float *gradX, *gradWeight, *gradBias;
  const float *gradOut, *x, *mean, *rstd, *weight;
};

template <typename Args, typename... Extra>
Args readNormBackward(const KernelCall& call, const char* spread, int64_t total, int64_t statistics, int64_t parameters,
                      Extra... extra) {
  return Args{floats(call, 0, "gradX", total),
              optionalFloats(call, 1, "gradWeight", parameters),
              optionalFloats(call, 2, "gradBias", parameters),
              floats(call, 3, "gradOut", total),
              floats(call, 4, "x", total),
              floats(call, 5, "mean", statistics),
              floats(call, 6, spread, statistics),
              optionalFloats(call, 7, "weight", parameters),
              extra...};
}

// eps is read after `training`, before the buffers.
inline BatchNormGradArgs readBatchNormBackward(const KernelCall& call, const ChannelExtent& e, bool training) {
  const double eps = readEps(call);
  return readNormBackward<BatchNormGradArgs>(call, "variance", e.total, e.c, e.c, training, eps);
}

inline LayerNormGradArgs readLayerNormBackward(const KernelCall& call, const RowExtent& e) {
  return readNormBackward<LayerNormGradArgs>(call, "rstd", e.total, e.rows, e.normSize);
}

}  // namespace deepnode::args
