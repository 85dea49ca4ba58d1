// AVX2 GEMM micro-kernel: a 6 x 16 tile in 12 ymm accumulators, two vector loads of packed
// B and six broadcasts of packed A per step. Compiled with -mavx2 -mfma; gemm.cc calls it
// only when the CPU has both.
#include <immintrin.h>

#include <utility>

#include "gemm.h"

namespace deepnode::cpu::gemm_detail {

namespace {

constexpr int kMr = 6;
constexpr int kNv = 2;  // ymm vectors per tile row
constexpr int kNr = kNv * 8;

// AVX2 has no mask registers: masks are vectors whose sign bit selects a lane.
inline __m256i columnMask(int cols, int v) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - v * 8), lane);
}

template <int Rows>
inline void storeTile(__m256 (&acc)[Rows][kNv], float* c, int64_t ldc, int cols, float beta) {
  const __m256 betaV = _mm256_set1_ps(beta);
  if (cols == kNr) {
    for (int i = 0; i < Rows; ++i) {
      for (int v = 0; v < kNv; ++v) {
        float* dst = c + i * ldc + v * 8;
        __m256 r = beta == 0.0f ? acc[i][v] : _mm256_fmadd_ps(betaV, _mm256_loadu_ps(dst), acc[i][v]);
        _mm256_storeu_ps(dst, r);
      }
    }
    return;
  }
  for (int i = 0; i < Rows; ++i) {
    for (int v = 0; v < kNv; ++v) {
      __m256i mask = columnMask(cols, v);
      float* dst = c + i * ldc + v * 8;
      __m256 r = beta == 0.0f ? acc[i][v] : _mm256_fmadd_ps(betaV, _mm256_maskload_ps(dst, mask), acc[i][v]);
      _mm256_maskstore_ps(dst, mask, r);
    }
  }
}

template <int Rows>
void tileKernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int /*rows*/, int cols,
                float beta) {
  __m256 acc[Rows][kNv];
  for (int i = 0; i < Rows; ++i) {
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m256 b0 = _mm256_load_ps(pb);
    __m256 b1 = _mm256_load_ps(pb + 8);
    for (int i = 0; i < Rows; ++i) {
      __m256 a = _mm256_broadcast_ss(pa + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
    pa += kMr;
    pb += kNr;
  }
  storeTile<Rows>(acc, c, ldc, cols, beta);
}

template <int... Rows>
constexpr MicroKernelFn kernelFor(int rows, std::integer_sequence<int, Rows...>) {
  MicroKernelFn table[] = {tileKernel<Rows + 1>...};
  return table[rows - 1];
}

void dispatchKernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int rows, int cols,
                    float beta) {
  kernelFor(rows, std::make_integer_sequence<int, kMr>())(kc, pa, pb, c, ldc, rows, cols, beta);
}

}  // namespace

MicroKernel avx2MicroKernel() {
  return {"avx2-6x16", kMr, kNr, 6 * 40, 256, 4096, dispatchKernel, genericPackA, genericPackB};
}

}  // namespace deepnode::cpu::gemm_detail
