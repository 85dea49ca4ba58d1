// The element-wise family of CUDA kernels, split over several .cu files that each
// register their kernels through one function here (called by registerElementwiseKernels
// in elementwise.cu), and the host-side helpers they share: broadcast planning (each
// operand's strides over the output's dims, passed by value into the kernels' lambdas),
// the dtype checks and error flags read back from the device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../core/args/common.h"
#include "../../core/hd.h"
#include "../kernels.h"

namespace deepnode::cuda {

// Casts, unary maps (unary.cu), binary maps (binary.cu), where, expand, permute, slice and
// slice_assign (copy.cu), random fills and dropout (random.cu), optimizer steps (optim.cu),
// max, average and adaptive average pooling (pool.cu).
void registerUnaryKernels(KernelTable& table);
void registerBinaryKernels(KernelTable& table);
void registerCopyKernels(KernelTable& table);
void registerRandomKernels(KernelTable& table);
void registerOptimKernels(KernelTable& table);
void registerPoolKernels(KernelTable& table);

namespace elementwise {

// Dims a broadcast or a permute may keep after size-1 dims are dropped and contiguous
// runs merged; the cpu kernels allow 64, but shapes that need more than this are unheard of.
constexpr int kMaxDims = 24;
constexpr int kMaxOperands = 3;

// The output's dims (outermost first) and, per operand, its element stride along each
// (0 where it is broadcast). Small and trivially copyable, so kernels capture it by value.
// `narrow` when the output has fewer than 2^31 elements (so has every operand, and every
// offset): the index arithmetic then divides in 32 bits, several times cheaper on a GPU.
struct Strides {
  int dims = 0;
  bool narrow = false;
  int64_t shape[kMaxDims] = {};
  int64_t stride[kMaxOperands][kMaxDims] = {};
};

// The element offsets of operands [0, K) for output element i, from one walk over the dims.
template <int K>
DEEPNODE_HD inline void offsetsOf(const Strides& s, int64_t i, int64_t (&offsets)[K]) {
  for (int k = 0; k < K; ++k) offsets[k] = s.dims == 1 ? i * s.stride[k][0] : 0;
  if (s.dims == 1) return;  // same shapes, or one side a scalar: no division
  if (s.narrow) {
    uint32_t rest = static_cast<uint32_t>(i);
    for (int d = s.dims - 1; d >= 0; --d) {
      const uint32_t n = static_cast<uint32_t>(s.shape[d]), next = rest / n, at = rest - next * n;
      for (int k = 0; k < K; ++k) offsets[k] += at * s.stride[k][d];
      rest = next;
    }
    return;
  }
  for (int d = s.dims - 1; d >= 0; --d) {
    const int64_t n = s.shape[d], next = i / n, at = i - next * n;
    for (int k = 0; k < K; ++k) offsets[k] += at * s.stride[k][d];
    i = next;
  }
}

// The cpu kernels' checks (native/core/args/common.h): shape attributes, broadcasting,
// matching dtypes and finite numbers, with the same codes and messages.
using args::checkBroadcast;
using args::checkedShape;
using args::checkSameDType;
using args::finiteNumber;

// The plan of out = f(ins...): size-1 dims dropped and contiguous runs merged, as the cpu
// kernels plan it; ERR_NOT_SUPPORTED when more than kMaxDims dims remain.
Strides planBroadcast(const KernelCall& call, const Shape& out, const std::vector<Shape>& ins);
// The Strides of dims `shape` of an output of shape `out`, operand k's strides along them
// in strides[k]; the caller checks that shape has at most kMaxDims dims.
Strides packStrides(const Shape& shape, const std::vector<int64_t>* strides, int operands, const Shape& out);

}  // namespace elementwise

}  // namespace deepnode::cuda
