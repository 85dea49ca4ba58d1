// Standalone check and benchmark of cpu/gemm: every micro-kernel against a naive loop on
// odd, tiny, transposed and strided shapes, then GFLOP/s at sizes that matter to us.
// Build: native/tests/build.sh, then build/native-tests/gemm_test [bench].
#include "cpu/gemm.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/threadpool.h"

using deepnode::cpu::gemm_detail::MicroKernel;

namespace {

int failures = 0;

std::vector<float> randomVector(size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct Case {
  bool transA, transB;
  int64_t m, n, k;
  float alpha, beta;
  int64_t padA, padB, padC;  // extra columns beyond the logical width (leading dimension slack)
};

void naiveGemm(const Case& t, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  for (int64_t i = 0; i < t.m; ++i) {
    for (int64_t j = 0; j < t.n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < t.k; ++p) {
        double av = t.transA ? a[p * lda + i] : a[i * lda + p];
        double bv = t.transB ? b[j * ldb + p] : b[p * ldb + j];
        sum += av * bv;
      }
      double prior = t.beta == 0.0f ? 0.0 : t.beta * static_cast<double>(c[i * ldc + j]);
      c[i * ldc + j] = static_cast<float>(t.alpha * sum + prior);
    }
  }
}

void checkCase(const MicroKernel& uk, const Case& t, std::mt19937& rng) {
  int64_t lda = (t.transA ? t.m : t.k) + t.padA, rowsA = t.transA ? t.k : t.m;
  int64_t ldb = (t.transB ? t.k : t.n) + t.padB, rowsB = t.transB ? t.n : t.k;
  int64_t ldc = t.n + t.padC;
  auto a = randomVector(rowsA * lda + 1, rng), b = randomVector(rowsB * ldb + 1, rng);
  auto c = randomVector(t.m * ldc + 1, rng);
  if (t.beta == 0.0f) std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
  auto expected = c;
  naiveGemm(t, a.data(), lda, b.data(), ldb, expected.data(), ldc);
  deepnode::cpu::gemm_detail::sgemmWith(uk, t.transA, t.transB, t.m, t.n, t.k, t.alpha, a.data(), lda, b.data(), ldb,
                                        t.beta, c.data(), ldc);
  double worst = 0;
  for (int64_t i = 0; i < t.m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      float got = c[i * ldc + j], want = expected[i * ldc + j];
      bool bothNan = std::isnan(got) && std::isnan(want);
      double err = bothNan ? 0 : std::fabs(got - want) / (1e-5 * std::sqrt(t.k + 1.0) + 1e-5 * std::fabs(want));
      if (!(err <= worst)) worst = std::isnan(err) ? 1e30 : err;
    }
  }
  if (worst > 4) {
    ++failures;
    std::printf("FAIL %s tA=%d tB=%d m=%ld n=%ld k=%ld alpha=%g beta=%g pads=%ld,%ld,%ld: worst %.3g x tol\n", uk.name,
                t.transA, t.transB, (long)t.m, (long)t.n, (long)t.k, t.alpha, t.beta, (long)t.padA, (long)t.padB,
                (long)t.padC, worst);
  }
}

void checkKernel(const MicroKernel& uk) {
  std::mt19937 rng(42);
  const int64_t sizes[] = {1, 2, 3, 7, 13, 14, 15, 16, 17, 31, 33, 64, 97};
  int before = failures, count = 0;
  for (int64_t m : sizes) {
    for (int64_t n : sizes) {
      for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{5}, int64_t{40}}) {
        for (int flags = 0; flags < 4; ++flags) {
          float beta = (m + n + k) % 3 == 0 ? 0.0f : ((m + n) % 2 ? 1.0f : -0.5f);
          Case t{(flags & 1) != 0, (flags & 2) != 0, m, n, k, (k % 2) ? 1.0f : 0.75f, beta, m % 3, n % 2, k % 4};
          checkCase(uk, t, rng);
          ++count;
        }
      }
    }
  }
  // Larger shapes cross every blocking boundary (KC, MC, NC) and the thread split.
  const Case big[] = {
      {false, false, 500, 300, 1000, 1.0f, 0.0f, 0, 0, 0}, {true, false, 333, 700, 777, 0.5f, 1.0f, 3, 1, 2},
      {false, true, 257, 4200, 129, 1.0f, -1.0f, 0, 5, 0}, {true, true, 700, 65, 385, 2.0f, 0.0f, 1, 1, 1},
      {false, false, 1, 5000, 300, 1.0f, 0.0f, 0, 0, 0},   {false, false, 3000, 1, 300, 1.0f, 0.5f, 0, 0, 0},
      {false, true, 64, 128, 9216, 1.0f, 0.0f, 0, 0, 0},   {true, false, 128, 9216, 64, 1.0f, 1.0f, 0, 0, 0},
      {false, false, 5, 7, 0, 1.0f, 0.0f, 0, 0, 0},        {false, false, 20, 30, 50, 0.0f, 2.0f, 0, 0, 0},
  };
  for (const Case& t : big) {
    checkCase(uk, t, rng);
    ++count;
  }
  std::printf("%-14s %d cases, %d failed\n", uk.name, count, failures - before);
}

double secondsPerCall(const std::function<void()>& fn, double minSeconds = 0.3) {
  fn();
  int reps = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  double best = 1e30;
  while (elapsed < minSeconds || reps < 3) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    elapsed = std::chrono::duration<double>(t1 - start).count();
    ++reps;
  }
  return best;
}

void benchShape(const char* label, bool transA, bool transB, int64_t m, int64_t n, int64_t k) {
  std::mt19937 rng(1);
  auto a = randomVector(m * k, rng), b = randomVector(k * n, rng), c = randomVector(m * n, rng);
  double s = secondsPerCall([&] {
    deepnode::cpu::sgemm(transA, transB, m, n, k, 1.0f, a.data(), transA ? m : k, b.data(), transB ? k : n, 0.0f,
                         c.data(), n);
  });
  std::printf("  %-28s m=%5ld n=%5ld k=%5ld tA=%d tB=%d  %8.3f ms  %7.1f GFLOP/s\n", label, (long)m, (long)n, (long)k,
              transA, transB, s * 1e3, 2.0 * m * n * k / s * 1e-9);
}

void benchAll(int threads) {
  std::printf("sgemm (%s), %d thread(s):\n", deepnode::gemmKernelName().c_str(), threads);
  benchShape("square", false, false, 1024, 1024, 1024);
  benchShape("square", false, false, 512, 512, 512);
  benchShape("square", false, false, 256, 256, 256);
  benchShape("square tA tB", true, true, 1024, 1024, 1024);
  benchShape("conv2 fwd (per image)", false, false, 64, 576, 288);
  benchShape("conv2 bwd data (per image)", true, false, 288, 576, 64);
  benchShape("conv2 bwd weight (per image)", false, true, 64, 288, 576);
  benchShape("conv1 fwd (per image)", false, false, 32, 676, 9);
  benchShape("fc1 fwd", false, true, 64, 128, 9216);
  benchShape("fc1 bwd data", false, false, 64, 9216, 128);
  benchShape("fc1 bwd weight", true, false, 128, 9216, 64);
  benchShape("fc2 fwd", false, true, 64, 10, 128);
}

}  // namespace

int main(int argc, char** argv) {
  bool benchOnly = argc > 1 && std::string(argv[1]) == "bench";
  deepnode::ThreadPool pool(2);
  deepnode::setCurrentPool(&pool);
  if (!benchOnly) {
    checkKernel(deepnode::cpu::gemm_detail::genericMicroKernel());
    if (deepnode::simdLevel() >= deepnode::SimdLevel::Avx2) checkKernel(deepnode::cpu::gemm_detail::avx2MicroKernel());
    if (deepnode::simdLevel() >= deepnode::SimdLevel::Avx512) {
      checkKernel(deepnode::cpu::gemm_detail::avx512MicroKernel());
    }
  }
  deepnode::setCurrentPool(nullptr);
  benchAll(1);
  deepnode::setCurrentPool(&pool);
  benchAll(2);
  std::printf(failures ? "FAILED\n" : "OK\n");
  return failures ? 1 : 0;
}
