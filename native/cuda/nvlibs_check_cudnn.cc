// Asserts, at compile time, that the cuDNN declarations of nvlibs.h match NVIDIA's own
// headers. CMake builds this file only where cudnn.h is found (the GPU machine); elsewhere
// nvlibs.h is all there is.
#include <cudnn.h>

#include <cstddef>

#include "nvlibs_check.h"

namespace deepnode::cuda::nv::check {
namespace {

static_assert(SameSignature<CudnnGetPropertyFn, decltype(&cudnnGetProperty)>::value);
static_assert(static_cast<int>(CUDNN_STATUS_SUCCESS) == static_cast<int>(CudnnStatus::Success));

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
              same(CudnnStatus::NotSupported, CUDNN_STATUS_NOT_SUPPORTED) &&
              same(CudnnStatus::NotSupportedShape, CUDNN_STATUS_NOT_SUPPORTED_SHAPE));
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
}  // namespace deepnode::cuda::nv::check
