// The batched matmul kernel over our sgemm: checks every size against the attributes before
// touching memory, then threads either inside each GEMM (big matrices) or across the batch
// (many small ones), or not at all where the whole batch is too little work.
#include "../core/args/matmul.h"

#include <string>

#include "../core/threadpool.h"
#include "gemm.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

using args::checkedProduct;
using args::matmul::describe;
using args::matmul::expectOperand;
using args::matmul::MatmulShape;
using args::matmul::readShape;

// Below this many multiply-adds per matrix, threads go across the batch instead of inside.
constexpr double kThreadInsideGemm = 128.0 * 128.0 * 128.0;

// Below this many multiply-adds in the whole batch, waking the pool costs more than it saves,
// as inside sgemm: eight 32x32 products took 6.2 us on one thread and 7.7 us on two.
constexpr double kThreadAcrossBatch = 96.0 * 96.0 * 96.0;

}  // namespace

void matmul(KernelCall& call) {
  MatmulShape s = readShape(call);
  expectOperand(call, s, 0, "out", checkedProduct(call, {s.batch, s.m, s.n}));
  expectOperand(call, s, 1, "a", checkedProduct(call, {s.batchA, s.m, s.k}));
  expectOperand(call, s, 2, "b", checkedProduct(call, {s.batchB, s.k, s.n}));
  float alpha = static_cast<float>(call.number("alpha", 1.0));
  float beta = static_cast<float>(call.number("beta", 0.0));
  if (s.batch == 0 || s.m == 0 || s.n == 0) return;

  float* out = call.buffers[0].as<float>();
  const float* a = call.buffers[1].as<float>();
  const float* b = call.buffers[2].as<float>();
  int64_t strideA = s.batchA == 1 ? 0 : s.m * s.k, strideB = s.batchB == 1 ? 0 : s.k * s.n;
  int64_t lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n;
  auto one = [&](int64_t i) {
    sgemm(s.transA, s.transB, s.m, s.n, s.k, alpha, a + i * strideA, lda, b + i * strideB, ldb, beta,
          out + i * s.m * s.n, s.n);
  };
  double perMatrix = static_cast<double>(s.m) * s.n * s.k;
  if (s.batch == 1 || perMatrix >= kThreadInsideGemm || perMatrix * s.batch < kThreadAcrossBatch) {
    for (int64_t i = 0; i < s.batch; ++i) one(i);
    return;
  }
  parallelFor(s.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) one(i);
  });
}

}  // namespace deepnode::cpu
