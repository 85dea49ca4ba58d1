// Copies on CUDA with the cpu kernels' buffers, attributes and checks: where and expand
// (numpy broadcasting), permute, and the strided slices of one axis (slice, slice_assign).
// Every dtype moves as raw bits of its size; each output element is one thread's copy.
#include <cstdint>
#include <string>
#include <vector>

#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

// Calls fn(T()) with the unsigned type of an element of `size` bytes.
template <typename Fn>
void bySize(size_t size, Fn&& fn) {
  switch (size) {
    case 1: return fn(uint8_t());
    case 4: return fn(uint32_t());
    default: return fn(uint64_t());
  }
}

// ---------------------------------------------------------------------------------------
// where and expand

template <typename T>
void whereRun(const Strides& s, int64_t n, T* out, const uint8_t* c, const T* a, const T* b) {
  forEach("where", n, [=] DEEPNODE_HD(int64_t i) {
    int64_t at[3];
    offsetsOf(s, i, at);
    out[i] = c[at[0]] ? a[at[1]] : b[at[2]];
  });
}

template <typename T>
void expandRun(const Strides& s, int64_t n, T* out, const T* x) {
  forEach("expand", n, [=] DEEPNODE_HD(int64_t i) {
    int64_t at[1];
    offsetsOf(s, i, at);
    out[i] = x[at[0]];
  });
}

void where(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& cond = call.buffer(1, "cond", DType::UInt8);
  const Buffer& a = call.buffer(2, "a");
  const Buffer& b = call.buffer(3, "b");
  checkSameDType(call, a, b, "a", "b");
  checkSameDType(call, out, a, "out", "a");
  Shape outShape = checkedShape(call, "outShape"), condShape = checkedShape(call, "condShape");
  Shape aShape = checkedShape(call, "aShape"), bShape = checkedShape(call, "bShape");
  checkBroadcast(call, outShape, condShape, "cond");
  checkBroadcast(call, outShape, aShape, "a");
  checkBroadcast(call, outShape, bShape, "b");
  const int64_t n = numel(outShape);
  call.expectSize(0, "out", n);
  call.expectSize(1, "cond", numel(condShape));
  call.expectSize(2, "a", numel(aShape));
  call.expectSize(3, "b", numel(bShape));
  if (n == 0) return;

  Strides plan = planBroadcast(call, outShape, {condShape, aShape, bShape});
  bySize(dtypeSize(a.dtype), [&](auto tag) {
    using T = decltype(tag);
    whereRun(plan, n, out.as<T>(), cond.as<uint8_t>(), a.as<T>(), b.as<T>());
  });
}

void expand(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  checkSameDType(call, out, x, "out", "x");
  Shape outShape = checkedShape(call, "outShape"), xShape = checkedShape(call, "xShape");
  checkBroadcast(call, outShape, xShape, "x");
  const int64_t n = numel(outShape);
  call.expectSize(0, "out", n);
  call.expectSize(1, "x", numel(xShape));
  if (n == 0) return;

  Strides plan = planBroadcast(call, outShape, {xShape});
  bySize(dtypeSize(x.dtype), [&](auto tag) {
    using T = decltype(tag);
    expandRun(plan, n, out.as<T>(), x.as<T>());
  });
}

// ---------------------------------------------------------------------------------------
// permute

void checkPermutation(const KernelCall& call, const Shape& shape, const std::vector<int64_t>& perm) {
  std::vector<bool> seen(shape.size(), false);
  bool ok = perm.size() == shape.size();
  for (size_t i = 0; ok && i < perm.size(); ++i) {
    ok = perm[i] >= 0 && perm[i] < static_cast<int64_t>(shape.size()) && !seen[perm[i]];
    if (ok) seen[perm[i]] = true;
  }
  if (!ok) {
    call.fail("ERR_VALUE", "perm " + shapeString(perm) + " is not a permutation of the " +
                               std::to_string(shape.size()) + " dims of shape " + shapeString(shape));
  }
}

// out's dims (x's dims in perm order, size-1 dims dropped, dims adjacent in both layouts
// merged) with x's stride along each, as the cpu plans a permute.
Strides planPermute(const KernelCall& call, const Shape& shape, const std::vector<int64_t>& perm) {
  std::vector<int64_t> stride(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) stride[d] = stride[d + 1] * shape[d + 1];
  Shape outShape;
  std::vector<int64_t> xStride;
  for (int64_t axis : perm) {
    if (shape[axis] == 1) continue;
    if (!outShape.empty() && xStride.back() == stride[axis] * shape[axis]) {
      outShape.back() *= shape[axis];
      xStride.back() = stride[axis];
    } else {
      outShape.push_back(shape[axis]);
      xStride.push_back(stride[axis]);
    }
  }
  if (outShape.size() > static_cast<size_t>(kMaxDims)) {
    call.fail("ERR_NOT_SUPPORTED", "the cuda backend permutes at most " + std::to_string(kMaxDims) +
                                       " dims after merging, got " + shapeString(outShape));
  }
  Strides plan;
  plan.dims = static_cast<int>(outShape.size());
  plan.narrow = numel(shape) < (int64_t{1} << 31);
  for (int d = 0; d < plan.dims; ++d) {
    plan.shape[d] = outShape[d];
    plan.stride[0][d] = xStride[d];
  }
  return plan;
}

void permute(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  checkSameDType(call, out, x, "out", "x");
  Shape shape = checkedShape(call, "shape");
  std::vector<int64_t> perm = call.ints("perm");
  checkPermutation(call, shape, perm);
  call.expectSize(1, "x", numel(shape));
  call.expectSize(0, "out", numel(shape));
  if (x.size == 0) return;

  Strides plan = planPermute(call, shape, perm);
  bySize(dtypeSize(x.dtype), [&](auto tag) {
    using T = decltype(tag);
    expandRun(plan, x.size, out.as<T>(), x.as<T>());
  });
}

// ---------------------------------------------------------------------------------------
// slice and slice_assign: the large tensor is [outer, largeDim, inner], the small one
// [outer, count, inner], and row i of the small one is row start + i * step of the large.

struct SlicePlan {
  int64_t outer, largeDim, inner, count, start, step;
};

SlicePlan readSlicePlan(const KernelCall& call, const Buffer& large, const Buffer& small) {
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

// The large tensor's element for element e of the small one.
DEEPNODE_HD inline int64_t largeIndex(const SlicePlan& p, int64_t e) {
  const int64_t j = e % p.inner, row = e / p.inner;
  const int64_t o = row / p.count, i = row % p.count;
  return (o * p.largeDim + p.start + i * p.step) * p.inner + j;
}

template <typename T>
void copySlice(const SlicePlan& p, T* large, T* small, int64_t n, bool toSmall) {
  if (toSmall) {
    forEach("slice", n, [=] DEEPNODE_HD(int64_t e) { small[e] = large[largeIndex(p, e)]; });
  } else {
    forEach("slice_assign", n, [=] DEEPNODE_HD(int64_t e) { large[largeIndex(p, e)] = small[e]; });
  }
}

void copyRows(const SlicePlan& p, const Buffer& large, const Buffer& small, bool toSmall) {
  if (small.size == 0) return;
  bySize(dtypeSize(large.dtype), [&](auto tag) {
    using T = decltype(tag);
    copySlice(p, large.as<T>(), small.as<T>(), small.size, toSmall);
  });
}

// buffers: [out (small), x (large)]
void slice(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  copyRows(readSlicePlan(call, x, out), x, out, true);
}

// buffers: [out (large), x (small)]
void sliceAssign(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  copyRows(readSlicePlan(call, out, x), out, x, false);
}

}  // namespace elementwise

void registerCopyKernels(KernelTable& table) {
  table["where"] = elementwise::where;
  table["expand"] = elementwise::expand;
  table["permute"] = elementwise::permute;
  table["slice"] = elementwise::slice;
  table["slice_assign"] = elementwise::sliceAssign;
}

}  // namespace deepnode::cuda
