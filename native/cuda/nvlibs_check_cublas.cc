// Asserts, at compile time, that the cuBLAS and cuBLASLt declarations of nvlibs.h match
// NVIDIA's own headers. CMake builds this file only where cublas_v2.h and cublasLt.h are
// found (the GPU machine, or scripts/check-nvlibs.sh); elsewhere nvlibs.h is all there is.
#include <cublasLt.h>
#include <cublas_v2.h>

#include "nvlibs_check.h"

namespace deepnode::cuda::nv::check {
namespace {

static_assert(SameSignature<CublasGetPropertyFn, decltype(&cublasGetProperty)>::value);
static_assert(SameSignature<CublasLtGetPropertyFn, decltype(&cublasLtGetProperty)>::value);
static_assert(static_cast<int>(CUBLAS_STATUS_SUCCESS) == static_cast<int>(CublasStatus::Success));

// cuBLAS.
static_assert(SameSignature<CublasCreateFn, decltype(&cublasCreate_v2)>::value);
static_assert(SameSignature<CublasDestroyFn, decltype(&cublasDestroy_v2)>::value);
static_assert(SameSignature<CublasSetStreamFn, decltype(&cublasSetStream_v2)>::value);
static_assert(SameSignature<CublasSetMathModeFn, decltype(&cublasSetMathMode)>::value);
static_assert(SameSignature<CublasSgemmStridedBatchedFn, decltype(&cublasSgemmStridedBatched)>::value);
static_assert(same(CublasStatus::NotInitialized, CUBLAS_STATUS_NOT_INITIALIZED));
static_assert(same(CublasStatus::AllocFailed, CUBLAS_STATUS_ALLOC_FAILED));
static_assert(same(CublasStatus::InvalidValue, CUBLAS_STATUS_INVALID_VALUE));
static_assert(same(CublasStatus::ArchMismatch, CUBLAS_STATUS_ARCH_MISMATCH));
static_assert(same(CublasStatus::MappingError, CUBLAS_STATUS_MAPPING_ERROR));
static_assert(same(CublasStatus::ExecutionFailed, CUBLAS_STATUS_EXECUTION_FAILED));
static_assert(same(CublasStatus::InternalError, CUBLAS_STATUS_INTERNAL_ERROR));
static_assert(same(CublasStatus::NotSupported, CUBLAS_STATUS_NOT_SUPPORTED));
static_assert(same(CublasStatus::LicenseError, CUBLAS_STATUS_LICENSE_ERROR));
static_assert(same(CublasOperation::N, CUBLAS_OP_N) && same(CublasOperation::T, CUBLAS_OP_T) &&
              same(CublasOperation::C, CUBLAS_OP_C));
static_assert(same(CublasMath::Default, CUBLAS_DEFAULT_MATH) && same(CublasMath::TensorOp, CUBLAS_TENSOR_OP_MATH) &&
              same(CublasMath::Pedantic, CUBLAS_PEDANTIC_MATH) &&
              same(CublasMath::Tf32TensorOp, CUBLAS_TF32_TENSOR_OP_MATH));

}  // namespace
}  // namespace deepnode::cuda::nv::check
