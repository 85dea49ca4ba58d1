// AVX2 GEMM micro-kernel: a 6 x 16 tile in 12 ymm accumulators, two vector loads of packed
// B and six broadcasts of packed A per step. Compiled with -mavx2 -mfma; gemm.cc calls it
// only when the CPU has both.
#include <immintrin.h>

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

// Stores rows [0, rows) of the tile (beta == 0 never reads c).
inline void storeTile(const __m256 (&acc)[kMr][kNv], float* c, int64_t ldc, int rows, int cols, float beta) {
  const __m256 betaV = _mm256_set1_ps(beta);
  for (int i = 0; i < rows; ++i) {
    for (int v = 0; v < kNv; ++v) {
      float* dst = c + i * ldc + v * 8;
      if (cols == kNr) {
        __m256 r = beta == 0.0f ? acc[i][v] : _mm256_fmadd_ps(betaV, _mm256_loadu_ps(dst), acc[i][v]);
        _mm256_storeu_ps(dst, r);
      } else {
        __m256i mask = columnMask(cols, v);
        __m256 r = beta == 0.0f ? acc[i][v] : _mm256_fmadd_ps(betaV, _mm256_maskload_ps(dst, mask), acc[i][v]);
        _mm256_maskstore_ps(dst, mask, r);
      }
    }
  }
}

// The whole 6 x 16 tile in twelve named accumulators (packed A is zero past `rows`), stored
// through storeTile. Named, not an array: GCC keeps an array of accumulators in memory and
// stores it at every step, which made this kernel a fifth of the FMA units' speed.
void tileKernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int rows, int cols, float beta) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
    const auto row = [&](int i, __m256& lo, __m256& hi) {
      const __m256 a = _mm256_broadcast_ss(pa + i);
      lo = _mm256_fmadd_ps(a, b0, lo);
      hi = _mm256_fmadd_ps(a, b1, hi);
    };
    row(0, c00, c01);
    row(1, c10, c11);
    row(2, c20, c21);
    row(3, c30, c31);
    row(4, c40, c41);
    row(5, c50, c51);
    pa += kMr;
    pb += kNr;
  }
  const __m256 acc[kMr][kNv] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  storeTile(acc, c, ldc, rows, cols, beta);
}

}  // namespace

MicroKernel avx2MicroKernel() {
  return {"avx2-6x16", kMr, kNr, 6 * 40, 256, 4096, tileKernel, genericPackA, genericPackB};
}

}  // namespace deepnode::cpu::gemm_detail
