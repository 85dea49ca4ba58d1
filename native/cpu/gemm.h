// Our own single-precision GEMM (Goto/BLIS style): operands are packed into cache-sized
// panels and a register-blocked micro-kernel, chosen at run time per instruction set,
// does the arithmetic. Row-major throughout, as deepnode stores tensors.
#pragma once

#include <cstdint>

namespace deepnode::cpu {

// c[m, n] = alpha * op(a) * op(b) + beta * c, row-major with leading dimensions.
// op(a) is [m, k]: a is [m, lda] or, with transA, [k, lda]; op(b) is [k, n]: b is [k, ldb]
// or, with transB, [n, ldb]. beta == 0 never reads c (it may hold NaN). Threads over the
// current pool; called from inside a parallelFor task it runs on the calling thread.
void sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

namespace gemm_detail {

// Computes one tile c[rows, cols] (= beta * c, beta == 0 never reads c) + packedA * packedB
// over kc steps. packedA holds `mr` floats per step (rows past `rows` are padding),
// packedB `nr` floats per step; rows <= mr, cols <= nr.
using MicroKernelFn = void (*)(int64_t kc, const float* packedA, const float* packedB, float* c, int64_t ldc, int rows,
                               int cols, float beta);

// Packs alpha * op(a)[0 : rows, 0 : kc] into panels of mr rows, mr floats per step of k, rows
// past the edge zero. `a` points at op(a)[0][0]: a[i * lda + p], or a[p * lda + i] with trans.
using PackAFn = void (*)(const float* a, int64_t lda, bool trans, int64_t rows, int64_t kc, float alpha, int mr,
                         float* dst);
// Packs op(b)[0 : kc, 0 : cols] into panels of nr columns, nr floats per step of k, columns
// past the edge zero. `b` points at op(b)[0][0]: b[p * ldb + j], or b[j * ldb + p] with trans.
using PackBFn = void (*)(const float* b, int64_t ldb, bool trans, int64_t kc, int64_t cols, int nr, float* dst);

void genericPackA(const float* a, int64_t lda, bool trans, int64_t rows, int64_t kc, float alpha, int mr, float* dst);
void genericPackB(const float* b, int64_t ldb, bool trans, int64_t kc, int64_t cols, int nr, float* dst);

struct MicroKernel {
  const char* name;
  int mr;  // tile rows
  int nr;  // tile columns
  int mc;  // rows of a packed block of A (a multiple of mr), sized for L2
  int kc;  // depth of a packed block, sized so a panel of B stays in L1
  int nc;  // columns of a packed block of B (a multiple of nr), sized for L3
  MicroKernelFn fn;
  PackAFn packA;
  PackBFn packB;
};

// Defined in gemm_avx512.cc and gemm_avx2.cc, compiled with those instruction sets;
// call them only when simdLevel() allows.
MicroKernel avx512MicroKernel();
MicroKernel avx2MicroKernel();
MicroKernel genericMicroKernel();

// The micro-kernel that sgemm uses on this CPU.
const MicroKernel& selectedMicroKernel();

// sgemm with a given micro-kernel, so that tests can check every path on one machine.
void sgemmWith(const MicroKernel& kernel, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace gemm_detail
}  // namespace deepnode::cpu
