// Strided slices along one axis, for narrow, select, split and cat: slice copies the rows
// x[o, start + i * step, :] into out[o, i, :], slice_assign copies them back. Tensors are
// seen as [outer, dim, inner], so each row is `inner` contiguous elements, copied whole.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrainBytes = 64 * 1024;

// The geometry both kernels take: the large tensor is [outer, largeDim, inner], the small
// one [outer, count, inner], and row i of the small one is row start + i * step of the large.
struct SlicePlan {
  int64_t outer, largeDim, inner, count, start, step;
};

SlicePlan readPlan(const KernelCall& call, const Buffer& large, const Buffer& small) {
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

// Copies every (o, i) row between the two tensors; toSmall picks the direction.
void copyRows(const SlicePlan& p, const Buffer& large, const Buffer& small, bool toSmall) {
  const size_t element = dtypeSize(large.dtype);
  const size_t rowBytes = static_cast<size_t>(p.inner) * element;
  auto* largeBytes = static_cast<uint8_t*>(large.data);
  auto* smallBytes = static_cast<uint8_t*>(small.data);
  const int64_t rows = p.outer * p.count;
  if (rows == 0 || rowBytes == 0) return;
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / static_cast<int64_t>(rowBytes));
  parallelFor(rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t o = r / p.count, i = r % p.count;
      uint8_t* largeRow = largeBytes + ((o * p.largeDim + p.start + i * p.step) * p.inner) * element;
      uint8_t* smallRow = smallBytes + r * p.inner * static_cast<int64_t>(element);
      if (toSmall)
        std::memcpy(smallRow, largeRow, rowBytes);
      else
        std::memcpy(largeRow, smallRow, rowBytes);
    }
  });
}

}  // namespace

// buffers: [out (small), x (large)]
void slice(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  copyRows(readPlan(call, x, out), x, out, true);
}

// buffers: [out (large), x (small)]
void sliceAssign(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  copyRows(readPlan(call, out, x), out, x, false);
}

}  // namespace deepnode::cpu
