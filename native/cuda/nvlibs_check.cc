// Asserts, at compile time, that the declarations of nvlibs.h match NVIDIA's own headers.
// CMake builds this file only where cublas_v2.h, cublasLt.h and cudnn.h are found (the
// GPU machine); elsewhere nvlibs.h is all there is.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <cstddef>
#include <type_traits>

#include "nvlibs.h"

namespace deepnode::cuda::nv {
namespace {

// Two types are call-compatible when they are the same, or both enums of the same size
// (our status enums stand for theirs), or pointers to compatible types.
template <typename Ours, typename Theirs>
constexpr bool compatible() {
  if constexpr (std::is_enum_v<Ours> && std::is_enum_v<Theirs>) {
    return sizeof(Ours) == sizeof(Theirs);
  } else if constexpr (std::is_class_v<Ours> && std::is_class_v<Theirs>) {
    return true;  // opaque handle structs (descriptors, contexts) behind pointers
  } else if constexpr (std::is_const_v<Ours> || std::is_const_v<Theirs>) {
    return std::is_const_v<Ours> == std::is_const_v<Theirs> &&
           compatible<std::remove_const_t<Ours>, std::remove_const_t<Theirs>>();
  } else if constexpr (std::is_pointer_v<Ours> && std::is_pointer_v<Theirs>) {
    return compatible<std::remove_pointer_t<Ours>, std::remove_pointer_t<Theirs>>();
  } else {
    return std::is_same_v<Ours, Theirs>;
  }
}

template <typename Ours, typename Theirs>
struct SameSignature : std::false_type {};

template <typename R1, typename... A1, typename R2, typename... A2>
struct SameSignature<R1 (*)(A1...), R2 (*)(A2...)>
    : std::bool_constant<sizeof...(A1) == sizeof...(A2) && compatible<R1, R2>() && (compatible<A1, A2>() && ...)> {};

static_assert(SameSignature<CublasGetPropertyFn, decltype(&cublasGetProperty)>::value);
static_assert(SameSignature<CublasLtGetPropertyFn, decltype(&cublasLtGetProperty)>::value);
static_assert(SameSignature<CudnnGetPropertyFn, decltype(&cudnnGetProperty)>::value);
static_assert(static_cast<int>(CUBLAS_STATUS_SUCCESS) == static_cast<int>(CublasStatus::Success));
static_assert(static_cast<int>(CUDNN_STATUS_SUCCESS) == static_cast<int>(CudnnStatus::Success));

template <typename Ours, typename Theirs>
constexpr bool same(Ours ours, Theirs theirs) {
  return static_cast<int>(ours) == static_cast<int>(theirs);
}

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

// cuDNN: functions.
static_assert(SameSignature<CudnnCreateFn, decltype(&cudnnCreate)>::value);
static_assert(SameSignature<CudnnDestroyFn, decltype(&cudnnDestroy)>::value);
static_assert(SameSignature<CudnnSetStreamFn, decltype(&cudnnSetStream)>::value);
static_assert(SameSignature<CudnnGetErrorStringFn, decltype(&cudnnGetErrorString)>::value);
static_assert(SameSignature<CudnnCreateTensorDescriptorFn, decltype(&cudnnCreateTensorDescriptor)>::value);
static_assert(SameSignature<CudnnDestroyTensorDescriptorFn, decltype(&cudnnDestroyTensorDescriptor)>::value);
static_assert(SameSignature<CudnnSetTensor4dDescriptorFn, decltype(&cudnnSetTensor4dDescriptor)>::value);
static_assert(SameSignature<CudnnCreateFilterDescriptorFn, decltype(&cudnnCreateFilterDescriptor)>::value);
static_assert(SameSignature<CudnnDestroyFilterDescriptorFn, decltype(&cudnnDestroyFilterDescriptor)>::value);
static_assert(SameSignature<CudnnSetFilter4dDescriptorFn, decltype(&cudnnSetFilter4dDescriptor)>::value);
static_assert(SameSignature<CudnnCreateConvolutionDescriptorFn, decltype(&cudnnCreateConvolutionDescriptor)>::value);
static_assert(SameSignature<CudnnDestroyConvolutionDescriptorFn, decltype(&cudnnDestroyConvolutionDescriptor)>::value);
static_assert(SameSignature<CudnnSetConvolution2dDescriptorFn, decltype(&cudnnSetConvolution2dDescriptor)>::value);
static_assert(SameSignature<CudnnSetConvolutionGroupCountFn, decltype(&cudnnSetConvolutionGroupCount)>::value);
static_assert(SameSignature<CudnnSetConvolutionMathTypeFn, decltype(&cudnnSetConvolutionMathType)>::value);
static_assert(
    SameSignature<CudnnGetConvolutionForwardAlgorithmFn, decltype(&cudnnGetConvolutionForwardAlgorithm_v7)>::value);
static_assert(SameSignature<CudnnGetConvolutionForwardWorkspaceSizeFn,
                            decltype(&cudnnGetConvolutionForwardWorkspaceSize)>::value);
static_assert(SameSignature<CudnnConvolutionForwardFn, decltype(&cudnnConvolutionForward)>::value);
static_assert(SameSignature<CudnnGetConvolutionBackwardDataAlgorithmFn,
                            decltype(&cudnnGetConvolutionBackwardDataAlgorithm_v7)>::value);
static_assert(SameSignature<CudnnGetConvolutionBackwardDataWorkspaceSizeFn,
                            decltype(&cudnnGetConvolutionBackwardDataWorkspaceSize)>::value);
static_assert(SameSignature<CudnnConvolutionBackwardDataFn, decltype(&cudnnConvolutionBackwardData)>::value);
static_assert(SameSignature<CudnnGetConvolutionBackwardFilterAlgorithmFn,
                            decltype(&cudnnGetConvolutionBackwardFilterAlgorithm_v7)>::value);
static_assert(SameSignature<CudnnGetConvolutionBackwardFilterWorkspaceSizeFn,
                            decltype(&cudnnGetConvolutionBackwardFilterWorkspaceSize)>::value);
static_assert(SameSignature<CudnnConvolutionBackwardFilterFn, decltype(&cudnnConvolutionBackwardFilter)>::value);

// cuDNN: constants.
static_assert(same(CudnnStatus::BadParam, CUDNN_STATUS_BAD_PARAM) &&
              same(CudnnStatus::NotSupported, CUDNN_STATUS_NOT_SUPPORTED));
static_assert(same(CudnnDataType::Float, CUDNN_DATA_FLOAT) && same(CudnnDataType::Double, CUDNN_DATA_DOUBLE) &&
              same(CudnnDataType::Half, CUDNN_DATA_HALF));
static_assert(same(CudnnTensorFormat::Nchw, CUDNN_TENSOR_NCHW) && same(CudnnTensorFormat::Nhwc, CUDNN_TENSOR_NHWC));
static_assert(same(CudnnConvolutionMode::Convolution, CUDNN_CONVOLUTION) &&
              same(CudnnConvolutionMode::CrossCorrelation, CUDNN_CROSS_CORRELATION));
static_assert(same(CudnnMathType::Default, CUDNN_DEFAULT_MATH) && same(CudnnMathType::TensorOp, CUDNN_TENSOR_OP_MATH) &&
              same(CudnnMathType::TensorOpAllowConversion, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) &&
              same(CudnnMathType::Fma, CUDNN_FMA_MATH));
static_assert(same(CudnnDeterminism::NonDeterministic, CUDNN_NON_DETERMINISTIC) &&
              same(CudnnDeterminism::Deterministic, CUDNN_DETERMINISTIC));
static_assert(same(CudnnConvolutionFwdAlgo::ImplicitGemm, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) &&
              same(CudnnConvolutionFwdAlgo::ImplicitPrecompGemm, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) &&
              same(CudnnConvolutionFwdAlgo::Count, CUDNN_CONVOLUTION_FWD_ALGO_COUNT));
static_assert(same(CudnnConvolutionBwdDataAlgo::Algo0, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) &&
              same(CudnnConvolutionBwdDataAlgo::Algo1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1) &&
              same(CudnnConvolutionBwdDataAlgo::Count, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT));
static_assert(same(CudnnConvolutionBwdFilterAlgo::Algo0, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0) &&
              same(CudnnConvolutionBwdFilterAlgo::Algo1, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1) &&
              same(CudnnConvolutionBwdFilterAlgo::Count, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT));

// cuDNN: the algorithm candidates' layout, field by field.
template <typename Ours, typename Theirs>
constexpr bool samePerfLayout() {
  return sizeof(Ours) == sizeof(Theirs) && offsetof(Ours, algo) == offsetof(Theirs, algo) &&
         offsetof(Ours, status) == offsetof(Theirs, status) && offsetof(Ours, time) == offsetof(Theirs, time) &&
         offsetof(Ours, memory) == offsetof(Theirs, memory) &&
         offsetof(Ours, determinism) == offsetof(Theirs, determinism) &&
         offsetof(Ours, mathType) == offsetof(Theirs, mathType) && sizeof(Ours::algo) == sizeof(Theirs::algo) &&
         sizeof(Ours::status) == sizeof(Theirs::status) && sizeof(Ours::memory) == sizeof(Theirs::memory);
}
static_assert(samePerfLayout<CudnnConvolutionFwdAlgoPerf, cudnnConvolutionFwdAlgoPerf_t>());
static_assert(samePerfLayout<CudnnConvolutionBwdDataAlgoPerf, cudnnConvolutionBwdDataAlgoPerf_t>());
static_assert(samePerfLayout<CudnnConvolutionBwdFilterAlgoPerf, cudnnConvolutionBwdFilterAlgoPerf_t>());

}  // namespace
}  // namespace deepnode::cuda::nv
