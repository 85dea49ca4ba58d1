// Shared by the kernels built on NVIDIA's libraries (matmul.cu, conv.cu, rnn.cu): the
// row-major GEMM over cuBLAS that matmul and the recurrent layers use.
#pragma once

#include <cstdint>

#include "../../core/kernel.h"
#include "../context.h"
#include "../kernels.h"

namespace deepnode::cuda {

// Row-major C_i [m, n] = alpha op(A_i) [m, k] op(B_i) [k, n] + beta C_i for i < batch,
// each matrix stored row by row with its leading dimension (lda, ldb, ldc) and X_i at
// X + i * strideX (a stride of 0 reuses one matrix for the whole batch). One strided
// batched cuBLAS call on the current stream: row-major C = A B is column-major
// C^T = B^T A^T, so the operands swap places. TF32 only when tf32Allowed().
struct RowMajorGemm {
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* a = nullptr;
  int64_t lda = 0, strideA = 0;
  const float* b = nullptr;
  int64_t ldb = 0, strideB = 0;
  float* c = nullptr;
  int64_t ldc = 0, strideC = 0;
  int64_t batch = 1;
};

// `op` names the kernel in the error for sizes past cuBLAS's 32-bit arguments.
void gemmRowMajor(const char* op, const RowMajorGemm& g);

void matmul(KernelCall& call);
void conv2d(KernelCall& call);
void conv2dBackwardData(KernelCall& call);
void conv2dBackwardWeight(KernelCall& call);
void rnnForward(KernelCall& call);
void rnnBackward(KernelCall& call);

}  // namespace deepnode::cuda
