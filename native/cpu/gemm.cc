// The GEMM driver: Goto/BLIS blocking (NC columns of B, KC depth, MC rows of A), packing of
// both operands into micro-panels, threading over a grid of C blocks, and the choice of
// micro-kernel by CPU. The per-ISA micro-kernels live in gemm_avx512.cc and gemm_avx2.cc;
// the plain C++ one here runs everywhere.
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <string>

#include "../core/cpu_features.h"
#include "../core/threadpool.h"

namespace deepnode::cpu {

namespace gemm_detail {

namespace {

constexpr int kGenericMr = 4;
constexpr int kGenericNr = 8;

// Plain loops the compiler can vectorise for the baseline instruction set.
void genericKernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int rows, int cols,
                   float beta) {
  float acc[kGenericMr][kGenericNr] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < kGenericMr; ++i) {
      for (int j = 0; j < kGenericNr; ++j) acc[i][j] += pa[i] * pb[j];
    }
    pa += kGenericMr;
    pb += kGenericNr;
  }
  for (int i = 0; i < rows; ++i) {
    float* dst = c + i * ldc;
    for (int j = 0; j < cols; ++j) dst[j] = beta == 0.0f ? acc[i][j] : acc[i][j] + beta * dst[j];
  }
}

// Grow-only, 64-byte aligned scratch; one per thread so nested and concurrent calls never share.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(data_); }
  float* get(size_t count) {
    if (count > capacity_) {
      std::free(data_);
      capacity_ = (count + 15) / 16 * 16;
      data_ = static_cast<float*>(std::aligned_alloc(64, capacity_ * sizeof(float)));
      if (data_ == nullptr) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

thread_local PackBuffer tlsPackA;
thread_local PackBuffer tlsPackB;

struct GemmArgs {
  bool transA, transB;
  int64_t m, n, k;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
};

// Splits `total` into near-equal blocks of at most `limit` (rounded up to `multiple`), so the
// last block is not a sliver.
int64_t balancedBlock(int64_t total, int64_t limit, int64_t multiple) {
  int64_t blocks = (total + limit - 1) / limit;
  int64_t size = (total + blocks - 1) / blocks;
  return (size + multiple - 1) / multiple * multiple;
}

// Runs the tiles of one packed A block against one packed B block; the B micro-panel stays in
// L1 while A's micro-panels stream from L2.
void macroKernel(const MicroKernel& uk, int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, float* c,
                 int64_t ldc, float beta) {
  for (int64_t jr = 0; jr < nc; jr += uk.nr) {
    int cols = static_cast<int>(std::min<int64_t>(uk.nr, nc - jr));
    for (int64_t ir = 0; ir < mc; ir += uk.mr) {
      int rows = static_cast<int>(std::min<int64_t>(uk.mr, mc - ir));
      uk.fn(kc, pa + ir * kc, pb + jr * kc, c + ir * ldc + jr, ldc, rows, cols, beta);
    }
  }
}

// The single-threaded blocked GEMM of c[m0 : m1, n0 : n1].
void gemmBlock(const MicroKernel& uk, const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  int64_t kcMax = balancedBlock(g.k, uk.kc, 1);
  int64_t mcMax = balancedBlock(m1 - m0, uk.mc, uk.mr);
  int64_t ncMax = balancedBlock(n1 - n0, uk.nc, uk.nr);
  float* pa = tlsPackA.get(static_cast<size_t>(mcMax * kcMax));
  float* pb = tlsPackB.get(static_cast<size_t>(ncMax * kcMax));
  for (int64_t jc = n0; jc < n1; jc += ncMax) {
    int64_t nc = std::min(ncMax, n1 - jc);
    for (int64_t pc = 0; pc < g.k; pc += kcMax) {
      int64_t kc = std::min(kcMax, g.k - pc);
      const float* bBlock = g.transB ? g.b + jc * g.ldb + pc : g.b + pc * g.ldb + jc;
      uk.packB(bBlock, g.ldb, g.transB, kc, nc, uk.nr, pb);
      float beta = pc == 0 ? g.beta : 1.0f;
      for (int64_t ic = m0; ic < m1; ic += mcMax) {
        int64_t mc = std::min(mcMax, m1 - ic);
        const float* aBlock = g.transA ? g.a + pc * g.lda + ic : g.a + ic * g.lda + pc;
        uk.packA(aBlock, g.lda, g.transA, mc, kc, g.alpha, uk.mr, pa);
        macroKernel(uk, mc, nc, kc, pa, pb, g.c + ic * g.ldc + jc, g.ldc, beta);
      }
    }
  }
}

// c = beta * c, for the cases with nothing to multiply.
void scaleC(const GemmArgs& g) {
  for (int64_t i = 0; i < g.m; ++i) {
    float* row = g.c + i * g.ldc;
    if (g.beta == 0.0f) {
      std::fill(row, row + g.n, 0.0f);
    } else if (g.beta != 1.0f) {
      for (int64_t j = 0; j < g.n; ++j) row[j] *= g.beta;
    }
  }
}

// Chooses a grid of rowParts x colParts blocks for `threads` that minimises the repacking each
// extra block costs (every column block packs its rows of A, every row block its columns of B).
void chooseGrid(const MicroKernel& uk, const GemmArgs& g, int threads, int64_t& rowParts, int64_t& colParts) {
  int64_t rowTiles = (g.m + uk.mr - 1) / uk.mr;
  int64_t colTiles = (g.n + uk.nr - 1) / uk.nr;
  double bestCost = -1;
  rowParts = colParts = 1;
  for (int64_t tm = 1; tm <= threads; ++tm) {
    if (threads % tm != 0) continue;
    int64_t tn = threads / tm;
    if (tm > rowTiles || tn > colTiles) continue;
    double cost = static_cast<double>(tn) * g.m * g.k + static_cast<double>(tm) * g.k * g.n;
    if (bestCost < 0 || cost < bestCost) {
      bestCost = cost;
      rowParts = tm;
      colParts = tn;
    }
  }
}

// Below this many multiply-adds, waking the pool costs more than it saves.
constexpr double kParallelThreshold = 96.0 * 96.0 * 96.0;

void runGemm(const MicroKernel& uk, const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0 || g.alpha == 0.0f) {
    scaleC(g);
    return;
  }
  int threads = maxThreads();
  double work = static_cast<double>(g.m) * g.n * g.k;
  if (threads <= 1 || work < kParallelThreshold) {
    gemmBlock(uk, g, 0, g.m, 0, g.n);
    return;
  }
  int64_t rowParts, colParts;
  chooseGrid(uk, g, threads, rowParts, colParts);
  int64_t rowsPer = balancedBlock(g.m, (g.m + rowParts - 1) / rowParts, uk.mr);
  int64_t colsPer = balancedBlock(g.n, (g.n + colParts - 1) / colParts, uk.nr);
  parallelFor(rowParts * colParts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int64_t m0 = (t / colParts) * rowsPer, n0 = (t % colParts) * colsPer;
      if (m0 < g.m && n0 < g.n) gemmBlock(uk, g, m0, std::min(g.m, m0 + rowsPer), n0, std::min(g.n, n0 + colsPer));
    }
  });
}

}  // namespace

void genericPackA(const float* a, int64_t lda, bool trans, int64_t rows, int64_t kc, float alpha, int mr, float* dst) {
  for (int64_t ir = 0; ir < rows; ir += mr, dst += mr * kc) {
    int panelRows = static_cast<int>(std::min<int64_t>(mr, rows - ir));
    for (int64_t p = 0; p < kc; ++p) {
      float* out = dst + p * mr;
      for (int i = 0; i < panelRows; ++i) out[i] = alpha * (trans ? a[p * lda + ir + i] : a[(ir + i) * lda + p]);
      for (int i = panelRows; i < mr; ++i) out[i] = 0.0f;
    }
  }
}

void genericPackB(const float* b, int64_t ldb, bool trans, int64_t kc, int64_t cols, int nr, float* dst) {
  for (int64_t jr = 0; jr < cols; jr += nr, dst += nr * kc) {
    int panelCols = static_cast<int>(std::min<int64_t>(nr, cols - jr));
    for (int64_t p = 0; p < kc; ++p) {
      float* out = dst + p * nr;
      for (int j = 0; j < panelCols; ++j) out[j] = trans ? b[(jr + j) * ldb + p] : b[p * ldb + jr + j];
      for (int j = panelCols; j < nr; ++j) out[j] = 0.0f;
    }
  }
}

MicroKernel genericMicroKernel() {
  return {"generic-4x8", kGenericMr, kGenericNr, kGenericMr * 32, 256, 2048, genericKernel, genericPackA, genericPackB};
}

const MicroKernel& selectedMicroKernel() {
  static const MicroKernel kernel = [] {
#if defined(__x86_64__)
    if (simdLevel() == SimdLevel::Avx512) return avx512MicroKernel();
    if (simdLevel() == SimdLevel::Avx2) return avx2MicroKernel();
#endif
    return genericMicroKernel();
  }();
  return kernel;
}

void sgemmWith(const MicroKernel& kernel, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  GemmArgs g{transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
  runGemm(kernel, g);
}

}  // namespace gemm_detail

void sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  gemm_detail::sgemmWith(gemm_detail::selectedMicroKernel(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c,
                         ldc);
}

}  // namespace deepnode::cpu

namespace deepnode {

std::string gemmKernelName() {
  return cpu::gemm_detail::selectedMicroKernel().name;
}

}  // namespace deepnode
