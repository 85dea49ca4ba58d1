// Strided slices along one axis, for narrow, select, split and cat: slice copies the rows
// x[o, start + i * step, :] into out[o, i, :], slice_assign copies them back. Tensors are
// seen as [outer, dim, inner], so each row is `inner` contiguous elements, copied whole.
#include "../core/args/slice.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrainBytes = 64 * 1024;

using args::readSliceCall;
using args::SliceCall;
using args::SlicePlan;

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
  const SliceCall sliced = readSliceCall(call, true);
  copyRows(sliced.plan, *sliced.large, *sliced.small, true);
}

// buffers: [out (large), x (small)]
void sliceAssign(KernelCall& call) {
  const SliceCall sliced = readSliceCall(call, false);
  copyRows(sliced.plan, *sliced.large, *sliced.small, false);
}

}  // namespace deepnode::cpu
