// Copies on CUDA with the cpu kernels' buffers, attributes and checks: where and expand
// (numpy broadcasting), permute, and the strided slices of one axis (slice, slice_assign).
// Every dtype moves as raw bits of its size; each output element is one thread's copy.
#include <cstdint>
#include <string>
#include <vector>

#include "../../core/args/elementwise.h"
#include "../../core/args/slice.h"
#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

using namespace args;

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
  WhereArgs args = readWhereArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& cond = call.buffers[1];
  const Buffer& a = call.buffers[2];
  const Buffer& b = call.buffers[3];
  const int64_t n = numel(args.outShape);
  if (n == 0) return;

  Strides plan = planBroadcast(call, args.outShape, {args.condShape, args.aShape, args.bShape});
  bySize(dtypeSize(a.dtype), [&](auto tag) {
    using T = decltype(tag);
    whereRun(plan, n, out.as<T>(), cond.as<uint8_t>(), a.as<T>(), b.as<T>());
  });
}

void expand(KernelCall& call) {
  ExpandArgs args = readExpandArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];
  const int64_t n = numel(args.outShape);
  if (n == 0) return;

  Strides plan = planBroadcast(call, args.outShape, {args.xShape});
  bySize(dtypeSize(x.dtype), [&](auto tag) {
    using T = decltype(tag);
    expandRun(plan, n, out.as<T>(), x.as<T>());
  });
}

// ---------------------------------------------------------------------------------------
// permute

// out's dims (x's dims in perm order, size-1 dims dropped, dims adjacent in both layouts
// merged) with x's stride along each, as the cpu plans a permute.
Strides planPermute(const KernelCall& call, const Shape& shape, const std::vector<int64_t>& perm) {
  const PermutePlan merged = args::planPermute(shape, perm);
  if (merged.outShape.size() > static_cast<size_t>(kMaxDims)) {
    call.fail("ERR_NOT_SUPPORTED", "the cuda backend permutes at most " + std::to_string(kMaxDims) +
                                       " dims after merging, got " + shapeString(merged.outShape));
  }
  return packStrides(merged.outShape, &merged.xStride, 1, shape);
}

void permute(KernelCall& call) {
  PermuteArgs args = readPermuteArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];
  if (x.size == 0) return;

  Strides plan = planPermute(call, args.shape, args.perm);
  bySize(dtypeSize(x.dtype), [&](auto tag) {
    using T = decltype(tag);
    expandRun(plan, x.size, out.as<T>(), x.as<T>());
  });
}

// ---------------------------------------------------------------------------------------
// slice and slice_assign: the large tensor is [outer, largeDim, inner], the small one
// [outer, count, inner], and row i of the small one is row start + i * step of the large.

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
  const SliceCall sliced = readSliceCall(call, true);
  copyRows(sliced.plan, *sliced.large, *sliced.small, true);
}

// buffers: [out (large), x (small)]
void sliceAssign(KernelCall& call) {
  const SliceCall sliced = readSliceCall(call, false);
  copyRows(sliced.plan, *sliced.large, *sliced.small, false);
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
