// Attention's fused softmax: one pass per row computes z = scale * scores + mask in the
// output buffer, a second its maximum, a third exp(z - max) and the sum. Entries at -inf
// are masked; a row with no finite maximum is all masked and is written as zeros, so
// attention over no keys gives 0, not NaN. The backward is softmax_backward on the output.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

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
  const int64_t rows = call.integer("rows"), cols = call.integer("cols");
  int64_t total = 0;
  if (rows < 0 || cols < 0 || __builtin_mul_overflow(rows, cols, &total)) {
    call.fail("ERR_SHAPE", "rows and cols must be non-negative and not too large");
  }
  const float scale = static_cast<float>(call.number("scale"));
  call.buffer(0, "out", DType::Float32);
  call.buffer(1, "scores", DType::Float32);
  call.expectSize(0, "out", total);
  call.expectSize(1, "scores", total);
  const bool masked = call.hasBuffer(2);
  if (masked) {
    call.buffer(2, "mask", DType::Float32);
    call.expectSize(2, "mask", total);
  }
  float* out = call.buffers[0].as<float>();
  const float* x = call.buffers[1].as<float>();
  const float* mask = masked ? call.buffers[2].as<float>() : nullptr;
  if (total == 0) return;
  parallelFor(rows, std::max<int64_t>(1, kGrain / cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      maskedSoftmaxRow(out + r * cols, x + r * cols, mask ? mask + r * cols : nullptr, cols, scale);
    }
  });
}

}  // namespace deepnode::cpu
