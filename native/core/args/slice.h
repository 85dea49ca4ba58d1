// The geometry of slice and slice_assign, read and checked the same way by the cpu kernels
// (native/cpu/slice.cc) and the CUDA ones (native/cuda/kernels/copy.cu).
#pragma once

#include <cstdint>
#include <string>

#include "../kernel.h"

namespace deepnode::args {

// The large tensor is [outer, largeDim, inner], the small one [outer, count, inner], and
// row i of the small one is row start + i * step of the large.
struct SlicePlan {
  int64_t outer, largeDim, inner, count, start, step;
};

// Reads the plan and checks that both buffers hold exactly its elements, in one dtype.
inline SlicePlan readSlicePlan(const KernelCall& call, const Buffer& large, const Buffer& small) {
  SlicePlan p{call.integer("outer"), call.integer("largeDim"), call.integer("inner"),
              call.integer("count"), call.integer("start"),    call.integer("step")};
  if (p.outer < 0 || p.largeDim < 0 || p.inner < 0 || p.count < 0) call.fail("ERR_SHAPE", "negative extent");
  if (p.step < 1) call.fail("ERR_VALUE", "step must be >= 1, got " + std::to_string(p.step));
  if (p.count > 0 && (p.start < 0 || p.start + (p.count - 1) * p.step >= p.largeDim)) {
    call.fail("ERR_VALUE", "positions from " + std::to_string(p.start) + " by " + std::to_string(p.step) +
                               " leave [0, " + std::to_string(p.largeDim) + ")");
  }
  if (large.dtype != small.dtype) call.fail("ERR_DTYPE", "both tensors must have one dtype");
  int64_t rows = 0, largeSize = 0, smallSize = 0;
  if (__builtin_mul_overflow(p.outer, p.inner, &rows) || __builtin_mul_overflow(rows, p.largeDim, &largeSize) ||
      __builtin_mul_overflow(rows, p.count, &smallSize)) {
    call.fail("ERR_SHAPE", "the sliced tensor is too large");
  }
  if (large.size != largeSize || small.size != smallSize) {
    call.fail("ERR_SHAPE", "buffers hold " + std::to_string(large.size) + " and " + std::to_string(small.size) +
                               " elements, expected " + std::to_string(largeSize) + " and " +
                               std::to_string(smallSize));
  }
  return p;
}

// A slice or slice_assign call: its plan and which buffer is the large tensor.
struct SliceCall {
  SlicePlan plan;
  const Buffer* large;
  const Buffer* small;
};

// slice's buffers are [out (small), x (large)], slice_assign's [out (large), x (small)].
inline SliceCall readSliceCall(const KernelCall& call, bool toSmall) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  const Buffer& large = toSmall ? x : out;
  const Buffer& small = toSmall ? out : x;
  return SliceCall{readSlicePlan(call, large, small), &large, &small};
}

}  // namespace deepnode::args
