// The element-wise family of CUDA kernels, split over several .cu files that each
// register their kernels through one function here (called by registerElementwiseKernels
// in elementwise.cu), and the host-side helpers they share: broadcast planning (each
// operand's strides over the output's dims, passed by value into the kernels' lambdas),
// the dtype checks and error flags read back from the device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
struct Strides {
  int dims = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[kMaxOperands][kMaxDims] = {};
};

// Operand k's element offset for output element i.
DEEPNODE_HD inline int64_t offsetOf(const Strides& s, int k, int64_t i) {
  if (s.dims == 1) return i * s.stride[k][0];  // same shapes, or one side a scalar: no division
  int64_t offset = 0;
  for (int d = s.dims - 1; d >= 0; --d) {
    const int64_t n = s.shape[d];
    offset += (i % n) * s.stride[k][d];
    i /= n;
  }
  return offset;
}

// Reads a shape attribute whose element count fits in int64.
Shape checkedShape(const KernelCall& call, const char* name);
// Fails with ERR_SHAPE unless `in` broadcasts to `out` (right-aligned, each dim equal or 1).
void checkBroadcast(const KernelCall& call, const Shape& out, const Shape& in, const char* role);
// The plan of out = f(ins...): size-1 dims dropped and contiguous runs merged, as the cpu
// kernels plan it; ERR_NOT_SUPPORTED when more than kMaxDims dims remain.
Strides planBroadcast(const KernelCall& call, const Shape& out, const std::vector<Shape>& ins);
void checkSameDType(const KernelCall& call, const Buffer& x, const Buffer& y, const char* xRole, const char* yRole);
// A number attribute that must be finite (ERR_VALUE otherwise), as the cpu kernels read them.
double finiteNumber(const KernelCall& call, const char* name);

// A device int that kernels raise (store 1) when they meet bad data; read back with raised().
class ErrorFlag {
 public:
  ErrorFlag();
  int* device() const { return scratch_.as<int>(); }
  bool raised() const;

 private:
  Scratch scratch_;
};

}  // namespace elementwise

}  // namespace deepnode::cuda
