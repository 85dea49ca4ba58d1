// The host emulation's cuBLAS: the few entry points the plugin uses, written from the
// documented semantics (column-major storage, op(X) = X or X^T, leading dimensions at
// least the stored rows, INVALID_VALUE for bad arguments), over host memory. Sums are in
// double, so results agree with the reference backend's.
#include <cstring>

#include "../nvlibs.h"
#include "fake_nvlibs.h"

namespace deepnode::cuda::nv {

// What a handle holds: the stream and the math mode last set.
struct CublasContext {
  cudaStream_t stream = nullptr;
  CublasMath math = CublasMath::Default;
};

}  // namespace deepnode::cuda::nv

namespace deepnode::cuda::emu {
namespace {

using namespace nv;

CublasStatus fakeCreate(CublasHandle* handle) {
  if (handle == nullptr) return CublasStatus::InvalidValue;
  *handle = new CublasContext();
  return CublasStatus::Success;
}

CublasStatus fakeDestroy(CublasHandle handle) {
  if (handle == nullptr) return CublasStatus::NotInitialized;
  delete handle;
  return CublasStatus::Success;
}

CublasStatus fakeSetStream(CublasHandle handle, cudaStream_t stream) {
  if (handle == nullptr) return CublasStatus::NotInitialized;
  handle->stream = stream;
  return CublasStatus::Success;
}

CublasStatus fakeSetMathMode(CublasHandle handle, CublasMath mode) {
  if (handle == nullptr) return CublasStatus::NotInitialized;
  int value = static_cast<int>(mode);
  if (value < 0 || value > 3) return CublasStatus::InvalidValue;
  handle->math = mode;
  return CublasStatus::Success;
}

bool validOp(CublasOperation op) {
  return op == CublasOperation::N || op == CublasOperation::T || op == CublasOperation::C;
}

int atLeastOne(int rows) {
  return rows > 1 ? rows : 1;
}

// The documented argument checks of gemm: sizes non-negative, known operations, and
// each leading dimension at least the rows of the matrix as stored.
bool validGemm(CublasOperation transa, CublasOperation transb, int m, int n, int k, int lda, int ldb, int ldc,
               int batchCount) {
  if (m < 0 || n < 0 || k < 0 || batchCount < 0 || !validOp(transa) || !validOp(transb)) return false;
  int rowsA = transa == CublasOperation::N ? m : k;
  int rowsB = transb == CublasOperation::N ? k : n;
  return lda >= atLeastOne(rowsA) && ldb >= atLeastOne(rowsB) && ldc >= atLeastOne(m);
}

// op(X)[row, col] of a column-major X with leading dimension ld.
float element(const float* x, int ld, CublasOperation op, long long row, long long col) {
  return op == CublasOperation::N ? x[row + col * ld] : x[col + row * ld];
}

void gemmOne(CublasOperation transa, CublasOperation transb, int m, int n, int k, float alpha, const float* A, int lda,
             const float* B, int ldb, float beta, float* C, int ldc) {
  for (long long col = 0; col < n; ++col) {
    for (long long row = 0; row < m; ++row) {
      double sum = 0;
      for (long long p = 0; p < k; ++p) {
        sum += static_cast<double>(element(A, lda, transa, row, p)) * element(B, ldb, transb, p, col);
      }
      float& c = C[row + col * ldc];
      // beta == 0: C is not read, so it may hold anything (NaN included).
      c = static_cast<float>(alpha * sum + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c));
    }
  }
}

CublasStatus fakeSgemmStridedBatched(CublasHandle handle, CublasOperation transa, CublasOperation transb, int m, int n,
                                     int k, const float* alpha, const float* A, int lda, long long strideA,
                                     const float* B, int ldb, long long strideB, const float* beta, float* C, int ldc,
                                     long long strideC, int batchCount) {
  if (handle == nullptr) return CublasStatus::NotInitialized;
  if (!validGemm(transa, transb, m, n, k, lda, ldb, ldc, batchCount)) return CublasStatus::InvalidValue;
  if (alpha == nullptr || beta == nullptr) return CublasStatus::InvalidValue;
  if (m == 0 || n == 0 || batchCount == 0) return CublasStatus::Success;
  if (C == nullptr || (k > 0 && (A == nullptr || B == nullptr))) return CublasStatus::InvalidValue;
  for (int i = 0; i < batchCount; ++i) {
    gemmOne(transa, transb, m, n, k, *alpha, A + i * strideA, lda, B + i * strideB, ldb, *beta, C + i * strideC, ldc);
  }
  return CublasStatus::Success;
}

}  // namespace

void* fakeCublasSymbol(const char* name) {
  const FakeEntry entries[] = {
      {kCublasCreate, entry<CublasCreateFn>(fakeCreate)},
      {kCublasDestroy, entry<CublasDestroyFn>(fakeDestroy)},
      {kCublasSetStream, entry<CublasSetStreamFn>(fakeSetStream)},
      {kCublasSetMathMode, entry<CublasSetMathModeFn>(fakeSetMathMode)},
      {kCublasSgemmStridedBatched, entry<CublasSgemmStridedBatchedFn>(fakeSgemmStridedBatched)},
  };
  return findEntry(entries, name);
}

}  // namespace deepnode::cuda::emu
