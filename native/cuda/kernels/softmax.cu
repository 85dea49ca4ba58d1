// Softmax and log-softmax over the middle dim of [outer, dim, inner], their backward, and
// attention's masked softmax on CUDA, with the cpu kernels' buffers, attributes and
// arithmetic: the row's maximum is subtracted first (a row of -inf gives NaN), sums are in
// double, and log-softmax is (x - max) - log(sum); exponentials are taken in double. Each row's maximum and sum are
// red::segmentedReduce passes (chunked when the row is long), then one pass writes every
// element.
#include <math.h>

#include <cstdint>

#include "../../core/args/masked_softmax.h"
#include "reductions.h"

namespace deepnode::cuda {
namespace red_softmax {

using namespace red;

// The largest value, NaN once one is seen (a row holding NaN gives NaN, as on the cpu).
struct MaxWithNaN {
  using Acc = float;
  static DEEPNODE_HD Acc init() { return -INFINITY; }
  static DEEPNODE_HD Acc add(Acc acc, float x) { return (x > acc || x != x) ? x : acc; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return add(a, b); }
};

// The largest value, NaN ignored (std::max's rule, as the cpu's masked softmax).
struct MaxIgnoringNaN {
  using Acc = float;
  static DEEPNODE_HD Acc init() { return -INFINITY; }
  static DEEPNODE_HD Acc add(Acc acc, float x) { return x > acc ? x : acc; }
  static DEEPNODE_HD Acc merge(Acc a, Acc b) { return add(a, b); }
};

// Row `row` of [outer, dim, inner] (one (outer, inner) pair): element d is at
// first(row) + d * inner; element k of the tensor belongs to row rowOf(k).
struct Rows {
  int64_t dim, inner;
  DEEPNODE_HD int64_t first(int64_t row) const {
    return inner == 1 ? row * dim : row / inner * dim * inner + row % inner;
  }
  DEEPNODE_HD int64_t rowOf(int64_t k) const { return inner == 1 ? k / dim : k / (dim * inner) * inner + k % inner; }
};

// exp(shifted) * factor, the exponential in double and rounded once: CUDA's expf may be 2 ulp
// off, which the exact-value softmax tests would see.
DEEPNODE_HD inline float expTimes(float shifted, float factor) {
  return static_cast<float>(::exp(static_cast<double>(shifted)) * factor);
}

// softmax: exp(x - max) * (1 / sum); log-softmax: (x - max) - log(sum), with the sum of
// exp(x - max) in double. Three passes: the maxima, the sums, then every element.
void softmaxRows(const Extent& e, float* out, const float* x, bool log, float* m, float* factor) {
  const Rows rows{e.dim, e.inner};
  const Layout layout = e.inner == 1 ? Layout::Adjacent : Layout::Any;
  segmentedReduce<MaxWithNaN>(
      "softmax", e.outer * e.inner, e.dim,
      [=] DEEPNODE_HD(int64_t row, int64_t d) { return x[rows.first(row) + d * rows.inner]; },
      [=] DEEPNODE_HD(int64_t row, float max) { m[row] = max; }, layout);
  segmentedReduce<SumDouble>(
      "softmax", e.outer * e.inner, e.dim,
      [=] DEEPNODE_HD(int64_t row, int64_t d) {
        return ::exp(static_cast<double>(x[rows.first(row) + d * rows.inner] - m[row]));
      },
      [=] DEEPNODE_HD(int64_t row, double sum) {
        factor[row] = log ? static_cast<float>(::log(sum)) : static_cast<float>(1.0 / sum);
      },
      layout);
  forEach("softmax", e.total, [=] DEEPNODE_HD(int64_t k) {
    const int64_t row = rows.rowOf(k);
    out[k] = log ? (x[k] - m[row]) - factor[row] : expTimes(x[k] - m[row], factor[row]);
  });
}

// gx = y * (gy - sum(gy * y)) for softmax, gx = gy - exp(y) * sum(gy) for log-softmax.
void softmaxBackwardRows(const Extent& e, float* gx, const float* gy, const float* y, bool log, float* sums) {
  const Rows rows{e.dim, e.inner};
  const Layout layout = e.inner == 1 ? Layout::Adjacent : Layout::Any;
  segmentedReduce<SumDouble>(
      "softmax_backward", e.outer * e.inner, e.dim,
      [=] DEEPNODE_HD(int64_t row, int64_t d) {
        const int64_t k = rows.first(row) + d * rows.inner;
        return log ? static_cast<double>(gy[k]) : static_cast<double>(gy[k]) * y[k];
      },
      [=] DEEPNODE_HD(int64_t row, double sum) { sums[row] = static_cast<float>(sum); }, layout);
  forEach("softmax_backward", e.total, [=] DEEPNODE_HD(int64_t k) {
    const float s = sums[rows.rowOf(k)];
    gx[k] = log ? static_cast<float>(gy[k] - ::exp(static_cast<double>(y[k])) * s) : y[k] * (gy[k] - s);
  });
}

// z = scale * scores + mask (mask null for none).
struct MaskedScores {
  const float *x, *mask;
  float scale;
  DEEPNODE_HD float operator()(int64_t k) const { return scale * x[k] + (mask ? mask[k] : 0.0f); }
};

// out = softmax(z) per row; a row with no finite maximum is all masked and written as zeros.
void maskedSoftmaxRows(int64_t cols, int64_t total, const MaskedScores& z, float* out, float* m, float* factor) {
  const int64_t rows = total / cols;
  segmentedReduce<MaxIgnoringNaN>(
      "masked_softmax", rows, cols, [=] DEEPNODE_HD(int64_t r, int64_t j) { return z(r * cols + j); },
      [=] DEEPNODE_HD(int64_t r, float max) { m[r] = max; }, Layout::Adjacent);
  segmentedReduce<SumDouble>(
      "masked_softmax", rows, cols,
      [=] DEEPNODE_HD(int64_t r, int64_t j) {
        return m[r] == -INFINITY ? 0.0 : ::exp(static_cast<double>(z(r * cols + j) - m[r]));
      },
      [=] DEEPNODE_HD(int64_t r, double sum) { factor[r] = static_cast<float>(1.0 / sum); }, Layout::Adjacent);
  forEach("masked_softmax", total, [=] DEEPNODE_HD(int64_t k) {
    const int64_t r = k / cols;
    out[k] = m[r] == -INFINITY ? 0.0f : expTimes(z(k) - m[r], factor[r]);
  });
}

void softmax(KernelCall& call) {
  args::SoftmaxArgs a = args::readSoftmax(call, {"out", "x"});
  const Extent& e = a.extent;
  if (e.total == 0) return;
  Scratch rowMax(static_cast<size_t>(e.outer * e.inner) * sizeof(float));
  Scratch factor(static_cast<size_t>(e.outer * e.inner) * sizeof(float));
  softmaxRows(e, call.buffers[0].as<float>(), call.buffers[1].as<float>(), a.log, rowMax.as<float>(),
              factor.as<float>());
}

void softmaxBackward(KernelCall& call) {
  args::SoftmaxArgs a = args::readSoftmax(call, {"gradX", "gradOut", "y"});
  const Extent& e = a.extent;
  if (e.total == 0) return;
  Scratch sums(static_cast<size_t>(e.outer * e.inner) * sizeof(float));
  softmaxBackwardRows(e, call.buffers[0].as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), a.log,
                      sums.as<float>());
}

void maskedSoftmax(KernelCall& call) {
  const args::masked_softmax::MaskedSoftmax m = args::masked_softmax::readMaskedSoftmax(call);
  if (m.total == 0) return;
  const MaskedScores z{m.scores, m.mask, m.scale};
  Scratch rowMax(static_cast<size_t>(m.rows) * sizeof(float)), factor(static_cast<size_t>(m.rows) * sizeof(float));
  maskedSoftmaxRows(m.cols, m.total, z, m.out, rowMax.as<float>(), factor.as<float>());
}

}  // namespace red_softmax

void registerSoftmaxKernels(KernelTable& table) {
  table["softmax"] = red_softmax::softmax;
  table["softmax_backward"] = red_softmax::softmaxBackward;
  table["masked_softmax"] = red_softmax::maskedSoftmax;
}

}  // namespace deepnode::cuda
