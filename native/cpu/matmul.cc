// The batched matmul kernel over our sgemm: checks every size against the attributes before
// touching memory, then threads either inside each GEMM (big matrices) or across the batch
// (many small ones).
#include <string>

#include "../core/threadpool.h"
#include "gemm.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

struct MatmulShape {
  int64_t batch, batchA, batchB, m, n, k;
  bool transA, transB;
};

// Product of non-negative sizes, failing instead of overflowing.
int64_t checkedProduct(const KernelCall& call, std::initializer_list<int64_t> dims) {
  int64_t total = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(total, d, &total)) call.fail("ERR_SHAPE", "sizes overflow 64-bit element counts");
  }
  return total;
}

std::string describe(const MatmulShape& s) {
  Shape a = s.transA ? Shape{s.batchA, s.k, s.m} : Shape{s.batchA, s.m, s.k};
  Shape b = s.transB ? Shape{s.batchB, s.n, s.k} : Shape{s.batchB, s.k, s.n};
  return "a " + shapeString(a) + (s.transA ? " (transposed)" : "") + " by b " + shapeString(b) +
         (s.transB ? " (transposed)" : "") + " into out " + shapeString({s.batch, s.m, s.n}) +
         ", inner dimensions k = " + std::to_string(s.k);
}

MatmulShape readShape(const KernelCall& call) {
  MatmulShape s{call.integer("batch"),      call.integer("batchA", 1), call.integer("batchB", 1),
                call.integer("m"),          call.integer("n"),         call.integer("k"),
                call.flag("transA", false), call.flag("transB", false)};
  if (s.batch < 0 || s.m < 0 || s.n < 0 || s.k < 0) call.fail("ERR_SHAPE", "negative size in " + describe(s));
  bool batchesOk = (s.batchA == 1 || s.batchA == s.batch) && (s.batchB == 1 || s.batchB == s.batch);
  if (!batchesOk) {
    call.fail("ERR_SHAPE", "batchA and batchB must be 1 or batch (" + std::to_string(s.batch) + ") in " + describe(s));
  }
  return s;
}

// Checks one operand's buffer against its shape; the message names both operands and k.
void expectOperand(const KernelCall& call, const MatmulShape& s, size_t index, const char* role, int64_t expected) {
  const Buffer& buf = call.buffer(index, role, DType::Float32);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + describe(s));
  }
}

// Below this many multiply-adds per matrix, threads go across the batch instead of inside.
constexpr double kThreadInsideGemm = 128.0 * 128.0 * 128.0;

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
  if (s.batch == 1 || static_cast<double>(s.m) * s.n * s.k >= kThreadInsideGemm) {
    for (int64_t i = 0; i < s.batch; ++i) one(i);
    return;
  }
  parallelFor(s.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) one(i);
  });
}

}  // namespace deepnode::cpu
