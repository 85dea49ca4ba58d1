// masked_softmax's attributes and buffers, shared by the cpu kernel (native/cpu/attention.cc)
// and the CUDA one (native/cuda/kernels/softmax.cu), so both fail with the same codes and
// messages.
#pragma once

#include <cstdint>

#include "../kernel.h"

namespace deepnode::args::masked_softmax {

// out [rows, cols] = softmax(scale * scores + mask) row by row; mask is null for none.
struct MaskedSoftmax {
  int64_t rows, cols, total;
  float scale;
  float* out;
  const float* scores;
  const float* mask;
};

// buffers: out, scores, mask? (all [rows, cols] float32).
inline MaskedSoftmax readMaskedSoftmax(const KernelCall& call) {
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
  return {rows,
          cols,
          total,
          scale,
          call.buffers[0].as<float>(),
          call.buffers[1].as<float>(),
          masked ? call.buffers[2].as<float>() : nullptr};
}

}  // namespace deepnode::args::masked_softmax
