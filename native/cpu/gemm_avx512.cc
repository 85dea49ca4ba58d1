// AVX-512 GEMM micro-kernel: a 14 x 32 tile held in 28 zmm accumulators, fed per step by two
// vector loads of packed B and 14 broadcasts of packed A folded into the FMAs. Compiled
// with -mavx512f etc.; gemm.cc calls it only when the CPU has AVX-512.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "gemm.h"

namespace deepnode::cpu::gemm_detail {

namespace {

constexpr int kMr = 14;
constexpr int kNv = 2;  // zmm vectors per tile row
constexpr int kNr = kNv * 16;

// Lanes of vector v that lie inside the first `cols` columns.
inline __mmask16 columnMask(int cols, int v) {
  int lanes = cols - v * 16;
  if (lanes >= 16) return 0xFFFF;
  if (lanes <= 0) return 0;
  return static_cast<__mmask16>((1u << lanes) - 1);
}

template <int Rows>
inline void storeTile(__m512 (&acc)[Rows][kNv], float* c, int64_t ldc, int cols, float beta) {
  const __m512 betaV = _mm512_set1_ps(beta);
  if (cols == kNr) {
    for (int i = 0; i < Rows; ++i) {
      for (int v = 0; v < kNv; ++v) {
        float* dst = c + i * ldc + v * 16;
        __m512 r = beta == 0.0f ? acc[i][v] : _mm512_fmadd_ps(betaV, _mm512_loadu_ps(dst), acc[i][v]);
        _mm512_storeu_ps(dst, r);
      }
    }
    return;
  }
  for (int i = 0; i < Rows; ++i) {
    for (int v = 0; v < kNv; ++v) {
      __mmask16 mask = columnMask(cols, v);
      float* dst = c + i * ldc + v * 16;
      __m512 r = beta == 0.0f ? acc[i][v] : _mm512_fmadd_ps(betaV, _mm512_maskz_loadu_ps(mask, dst), acc[i][v]);
      _mm512_mask_storeu_ps(dst, mask, r);
    }
  }
}

// Rows is a template argument so that edge tiles cost only the rows they have.
template <int Rows>
void tileKernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int /*rows*/, int cols,
                float beta) {
  __m512 acc[Rows][kNv];
  for (int i = 0; i < Rows; ++i) {
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m512 b0 = _mm512_load_ps(pb);
    __m512 b1 = _mm512_load_ps(pb + 16);
    _mm_prefetch(reinterpret_cast<const char*>(pb + 8 * kNr), _MM_HINT_T0);
    for (int i = 0; i < Rows; ++i) {
      __m512 a = _mm512_set1_ps(pa[i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
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
  if (rows == kMr) {
    tileKernel<kMr>(kc, pa, pb, c, ldc, rows, cols, beta);
    return;
  }
  kernelFor(rows, std::make_integer_sequence<int, kMr>())(kc, pa, pb, c, ldc, rows, cols, beta);
}

inline __mmask16 prefixMask(int64_t count) {
  return count >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1);
}

// One stage of a 16 x 16 transpose: swaps bit `Bit` of the row index with the same bit of the
// column index; four stages make the whole transpose, at one two-source permute per row.
template <int Bit>
inline void transposeStage(__m512 (&rows)[16]) {
  alignas(64) int32_t lowIndex[16], highIndex[16];
  for (int c = 0; c < 16; ++c) {
    bool set = (c & Bit) != 0;
    lowIndex[c] = set ? 16 + c - Bit : c;
    highIndex[c] = set ? 16 + c : c + Bit;
  }
  const __m512i lo = _mm512_load_si512(lowIndex), hi = _mm512_load_si512(highIndex);
  for (int r = 0; r < 16; ++r) {
    if (r & Bit) continue;
    __m512 a = rows[r], b = rows[r + Bit];
    rows[r] = _mm512_permutex2var_ps(a, lo, b);
    rows[r + Bit] = _mm512_permutex2var_ps(a, hi, b);
  }
}

// Loads `count` (<= 16) source rows of `depth` (<= 16) floats and transposes them: afterwards
// block[q] holds element q of every row, one row per lane; missing rows and columns are zero.
inline void loadTransposed(const float* src, int64_t ld, int64_t count, int64_t depth, __m512 (&block)[16]) {
  __mmask16 mask = prefixMask(depth);
  for (int r = 0; r < 16; ++r) block[r] = r < count ? _mm512_maskz_loadu_ps(mask, src + r * ld) : _mm512_setzero_ps();
  transposeStage<1>(block);
  transposeStage<2>(block);
  transposeStage<4>(block);
  transposeStage<8>(block);
}

// Rows of A run along k in memory: each 16-step slice of a 14-row panel is one transpose.
void packARows(const float* a, int64_t lda, int64_t rows, int64_t kc, float alpha, float* dst) {
  const __m512 scale = _mm512_set1_ps(alpha);
  const __mmask16 panelMask = prefixMask(kMr);
  for (int64_t ir = 0; ir < rows; ir += kMr, dst += kMr * kc) {
    int64_t panelRows = std::min<int64_t>(kMr, rows - ir);
    for (int64_t p = 0; p < kc; p += 16) {
      int64_t depth = std::min<int64_t>(16, kc - p);
      __m512 block[16];
      loadTransposed(a + ir * lda + p, lda, panelRows, depth, block);
      for (int64_t q = 0; q < depth; ++q) {
        _mm512_mask_storeu_ps(dst + (p + q) * kMr, panelMask, _mm512_mul_ps(scale, block[q]));
      }
    }
  }
}

// Transposed A already runs along m in memory: one masked copy per step of k.
void packAColumns(const float* a, int64_t lda, int64_t rows, int64_t kc, float alpha, float* dst) {
  const __m512 scale = _mm512_set1_ps(alpha);
  const __mmask16 panelMask = prefixMask(kMr);
  for (int64_t ir = 0; ir < rows; ir += kMr, dst += kMr * kc) {
    __mmask16 loadMask = prefixMask(std::min<int64_t>(kMr, rows - ir));
    for (int64_t p = 0; p < kc; ++p) {
      __m512 v = _mm512_maskz_loadu_ps(loadMask, a + p * lda + ir);
      _mm512_mask_storeu_ps(dst + p * kMr, panelMask, _mm512_mul_ps(scale, v));
    }
  }
}

void packA(const float* a, int64_t lda, bool trans, int64_t rows, int64_t kc, float alpha, int, float* dst) {
  if (trans) {
    packAColumns(a, lda, rows, kc, alpha, dst);
  } else {
    packARows(a, lda, rows, kc, alpha, dst);
  }
}

// B already runs along n in memory: two (masked) vector copies per step of k.
void packBRows(const float* b, int64_t ldb, int64_t kc, int64_t cols, float* dst) {
  for (int64_t jr = 0; jr < cols; jr += kNr, dst += kNr * kc) {
    int64_t panelCols = std::min<int64_t>(kNr, cols - jr);
    __mmask16 mask0 = prefixMask(panelCols), mask1 = prefixMask(std::max<int64_t>(0, panelCols - 16));
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b + p * ldb + jr;
      _mm512_store_ps(dst + p * kNr, _mm512_maskz_loadu_ps(mask0, src));
      _mm512_store_ps(dst + p * kNr + 16, _mm512_maskz_loadu_ps(mask1, src + 16));
    }
  }
}

// Transposed B runs along k in memory: each half panel of 16 columns is transposed 16 steps at
// a time.
void packBColumns(const float* b, int64_t ldb, int64_t kc, int64_t cols, float* dst) {
  for (int64_t jr = 0; jr < cols; jr += kNr, dst += kNr * kc) {
    for (int64_t half = 0; half < kNr; half += 16) {
      int64_t count = std::clamp<int64_t>(cols - jr - half, 0, 16);
      for (int64_t p = 0; p < kc; p += 16) {
        int64_t depth = std::min<int64_t>(16, kc - p);
        __m512 block[16];
        loadTransposed(b + (jr + half) * ldb + p, ldb, count, depth, block);
        for (int64_t q = 0; q < depth; ++q) _mm512_store_ps(dst + (p + q) * kNr + half, block[q]);
      }
    }
  }
}

void packB(const float* b, int64_t ldb, bool trans, int64_t kc, int64_t cols, int, float* dst) {
  if (trans) {
    packBColumns(b, ldb, kc, cols, dst);
  } else {
    packBRows(b, ldb, kc, cols, dst);
  }
}

}  // namespace

MicroKernel avx512MicroKernel() {
  return {"avx512-14x32", kMr, kNr, 14 * 24, 384, 4096, dispatchKernel, packA, packB};
}

}  // namespace deepnode::cpu::gemm_detail
