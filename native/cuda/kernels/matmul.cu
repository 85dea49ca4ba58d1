// Batched matmul on cuBLAS: the cpu kernel's attributes and checks (native/cpu/matmul.cc),
// then one strided batched SGEMM for the whole batch (library.h).
#include <algorithm>
#include <climits>
#include <initializer_list>
#include <string>

#include "../../core/args/matmul.h"
#include "../launch.h"
#include "../nvlibs_loader.h"
#include "library.h"

namespace deepnode::cuda {

namespace matmul_detail {

using args::checkedProduct;
using args::matmul::describe;
using args::matmul::expectOperand;
using args::matmul::MatmulShape;
using args::matmul::readShape;

// Sizes and leading dimensions as cuBLAS takes them; a leading dimension is at least 1
// even for an empty matrix, as cuBLAS requires.
int toInt(const char* op, const char* what, int64_t value) {
  if (value > INT_MAX) {
    throw KernelError("ERR_NOT_SUPPORTED", std::string(op) + ": " + what + " " + std::to_string(value) +
                                               " exceeds cuBLAS's 32-bit size arguments");
  }
  return static_cast<int>(value);
}

nv::CublasOperation operation(bool transposed) {
  return transposed ? nv::CublasOperation::T : nv::CublasOperation::N;
}

// C = beta C for an empty inner dimension, written here rather than left to cuBLAS: with
// beta 0 every element becomes 0, whatever the uninitialised output held.
void scaleOutput(const RowMajorGemm& g) {
  float* c = g.c;
  const float beta = g.beta;
  const int64_t n = g.n, ldc = g.ldc, strideC = g.strideC, perBatch = g.m * g.n;
  forEach("matmul_empty_k", g.batch * perBatch, [=] DEEPNODE_HD(int64_t i) {
    const int64_t b = i / perBatch, row = i % perBatch / n, col = i % n;
    float& out = c[b * strideC + row * ldc + col];
    out = beta == 0.0f ? 0.0f : beta * out;
  });
}

}  // namespace matmul_detail

void gemmRowMajor(const char* op, const RowMajorGemm& g) {
  using matmul_detail::toInt;
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) return matmul_detail::scaleOutput(g);
  const nv::CublasApi& api = nv::cublas();
  nv::CublasHandle handle = nv::cublasHandle();
  nv::check(api.setMathMode(handle, tf32Allowed() ? nv::CublasMath::Tf32TensorOp : nv::CublasMath::Default),
            nv::kCublasSetMathMode);
  // Column-major: C^T [n, m] = op(B)^T [n, k] op(A)^T [k, m].
  nv::check(api.sgemmStridedBatched(
                handle, matmul_detail::operation(g.transB), matmul_detail::operation(g.transA), toInt(op, "n", g.n),
                toInt(op, "m", g.m), toInt(op, "k", g.k), &g.alpha, g.b, toInt(op, "ldb", std::max<int64_t>(1, g.ldb)),
                g.strideB, g.a, toInt(op, "lda", std::max<int64_t>(1, g.lda)), g.strideA, &g.beta, g.c,
                toInt(op, "ldc", std::max<int64_t>(1, g.ldc)), g.strideC, toInt(op, "batch", g.batch)),
            nv::kCublasSgemmStridedBatched);
}

void matmul(KernelCall& call) {
  using namespace matmul_detail;
  MatmulShape s = readShape(call);
  expectOperand(call, s, 0, "out", checkedProduct(call, {s.batch, s.m, s.n}));
  expectOperand(call, s, 1, "a", checkedProduct(call, {s.batchA, s.m, s.k}));
  expectOperand(call, s, 2, "b", checkedProduct(call, {s.batchB, s.k, s.n}));
  RowMajorGemm g;
  g.transA = s.transA, g.transB = s.transB;
  g.m = s.m, g.n = s.n, g.k = s.k, g.batch = s.batch;
  g.alpha = static_cast<float>(call.number("alpha", 1.0));
  g.beta = static_cast<float>(call.number("beta", 0.0));
  g.a = call.buffers[1].as<float>(), g.lda = s.transA ? s.m : s.k, g.strideA = s.batchA == 1 ? 0 : s.m * s.k;
  g.b = call.buffers[2].as<float>(), g.ldb = s.transB ? s.k : s.n, g.strideB = s.batchB == 1 ? 0 : s.k * s.n;
  g.c = call.buffers[0].as<float>(), g.ldc = s.n, g.strideC = s.m * s.n;
  gemmRowMajor("matmul", g);
}

}  // namespace deepnode::cuda
