// Attention's fused softmax: one pass per row computes z = scale * scores + mask in the
// output buffer, a second its maximum, a third exp(z - max) and the sum. Entries at -inf
// are masked; a row with no finite maximum is all masked and is written as zeros, so
// attention over no keys gives 0, not NaN. The backward is softmax_backward on the output.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../core/args/masked_softmax.h"
#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"
#include "vec_math.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 32 * 1024;

// out [cols] = softmax(scale * x + mask) with mask null for none.
DEEPNODE_CLONES void maskedSoftmaxRow(float* __restrict out, const float* __restrict x, const float* __restrict mask,
                                      int64_t cols, float scale) {
  for (int64_t j = 0; j < cols; ++j) out[j] = scale * x[j] + (mask ? mask[j] : 0.0f);
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < cols; ++j) m = std::max(m, out[j]);
  if (m == -std::numeric_limits<float>::infinity()) {
    std::fill(out, out + cols, 0.0f);
    return;
  }
  double sum = 0;
  for (int64_t j = 0; j < cols; ++j) {
    float e = vec::exp(out[j] - m);
    out[j] = e;
    sum += e;
  }
  const float factor = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < cols; ++j) out[j] *= factor;
}

}  // namespace

void maskedSoftmax(KernelCall& call) {
  const args::masked_softmax::MaskedSoftmax m = args::masked_softmax::readMaskedSoftmax(call);
  const int64_t rows = m.rows, cols = m.cols, total = m.total;
  const float scale = m.scale;
  float* out = m.out;
  const float *x = m.scores, *mask = m.mask;
  if (total == 0) return;
  parallelFor(rows, std::max<int64_t>(1, kGrain / cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      maskedSoftmaxRow(out + r * cols, x + r * cols, mask ? mask + r * cols : nullptr, cols, scale);
    }
  });
}

}  // namespace deepnode::cpu
