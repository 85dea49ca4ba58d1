// Our own declarations of the cuBLAS, cuBLASLt and cuDNN entry points the plugin uses,
// written from NVIDIA's public API references. The libraries are opened with dlopen at
// run time, so the plugin compiles where only nvcc and the CUDA runtime are installed
// (CI) and loads where the libraries are missing. nvlibs_check.cc, built only where the
// real headers exist, asserts that every declaration here matches them.
#pragma once

#include <driver_types.h>   // cudaStream_t, from the CUDA runtime's headers
#include <library_types.h>  // libraryPropertyType, from the CUDA runtime's headers

#include <cstddef>

namespace deepnode::cuda::nv {

// Status enums: each library's success value is 0.
enum class CublasStatus : int {
  Success = 0,
  NotInitialized = 1,
  AllocFailed = 3,
  InvalidValue = 7,
  ArchMismatch = 8,
  MappingError = 11,
  ExecutionFailed = 13,
  InternalError = 14,
  NotSupported = 15,
  LicenseError = 16,
};
// cuDNN 9's hierarchical codes (the thousands give the category).
enum class CudnnStatus : int { Success = 0, BadParam = 2000, NotSupported = 3000, NotSupportedShape = 3002 };

// Whether a status is in cuDNN 9's "not supported" category (3000 to 3999: the shape, the
// layout, the architecture...), which an algorithm candidate answers when it cannot run.
inline bool isNotSupported(CudnnStatus status) {
  return static_cast<int>(status) / 1000 == 3;
}

// Library version queries: each writes the major, minor or patch number to *value.
using CublasGetPropertyFn = CublasStatus (*)(libraryPropertyType type, int* value);
using CublasLtGetPropertyFn = CublasStatus (*)(libraryPropertyType type, int* value);
using CudnnGetPropertyFn = CudnnStatus (*)(libraryPropertyType type, int* value);

// The entry points, by the names the libraries export them under.
inline constexpr const char* kCublasGetProperty = "cublasGetProperty";
inline constexpr const char* kCublasLtGetProperty = "cublasLtGetProperty";
inline constexpr const char* kCudnnGetProperty = "cudnnGetProperty";

// ---- cuBLAS ------------------------------------------------------------------------

struct CublasContext;  // opaque
using CublasHandle = CublasContext*;

enum class CublasOperation : int { N = 0, T = 1, C = 2 };
enum class CublasMath : int { Default = 0, TensorOp = 1, Pedantic = 2, Tf32TensorOp = 3 };

using CublasCreateFn = CublasStatus (*)(CublasHandle* handle);
using CublasDestroyFn = CublasStatus (*)(CublasHandle handle);
using CublasSetStreamFn = CublasStatus (*)(CublasHandle handle, cudaStream_t stream);
using CublasSetMathModeFn = CublasStatus (*)(CublasHandle handle, CublasMath mode);
// Column-major C_i = alpha op(A_i) op(B_i) + beta C_i for i < batchCount, where X_i
// starts at X + i * strideX; C is m x n, op(A) m x k, op(B) k x n.
using CublasSgemmStridedBatchedFn = CublasStatus (*)(CublasHandle handle, CublasOperation transa,
                                                     CublasOperation transb, int m, int n, int k, const float* alpha,
                                                     const float* A, int lda, long long strideA, const float* B,
                                                     int ldb, long long strideB, const float* beta, float* C, int ldc,
                                                     long long strideC, int batchCount);

inline constexpr const char* kCublasCreate = "cublasCreate_v2";
inline constexpr const char* kCublasDestroy = "cublasDestroy_v2";
inline constexpr const char* kCublasSetStream = "cublasSetStream_v2";
inline constexpr const char* kCublasSetMathMode = "cublasSetMathMode";
inline constexpr const char* kCublasSgemmStridedBatched = "cublasSgemmStridedBatched";

// ---- cuDNN (the legacy convolution API) ----------------------------------------------

struct CudnnContext;  // opaque, like the descriptors below
struct CudnnTensorStruct;
struct CudnnFilterStruct;
struct CudnnConvolutionStruct;
using CudnnHandle = CudnnContext*;
using CudnnTensorDescriptor = CudnnTensorStruct*;
using CudnnFilterDescriptor = CudnnFilterStruct*;
using CudnnConvolutionDescriptor = CudnnConvolutionStruct*;

enum class CudnnDataType : int { Float = 0, Double = 1, Half = 2 };
enum class CudnnTensorFormat : int { Nchw = 0, Nhwc = 1 };
enum class CudnnConvolutionMode : int { Convolution = 0, CrossCorrelation = 1 };
enum class CudnnMathType : int { Default = 0, TensorOp = 1, TensorOpAllowConversion = 2, Fma = 3 };
enum class CudnnDeterminism : int { NonDeterministic = 0, Deterministic = 1 };
enum class CudnnConvolutionFwdAlgo : int { ImplicitGemm = 0, ImplicitPrecompGemm = 1, Count = 8 };
enum class CudnnConvolutionBwdDataAlgo : int { Algo0 = 0, Algo1 = 1, Count = 6 };
enum class CudnnConvolutionBwdFilterAlgo : int { Algo0 = 0, Algo1 = 1, Count = 7 };

// One candidate of the algorithm heuristics (the three directions share the layout).
template <typename Algo>
struct CudnnAlgoPerf {
  Algo algo;
  CudnnStatus status;
  float time;     // milliseconds (-1 from the heuristics, which do not run anything)
  size_t memory;  // workspace bytes
  CudnnDeterminism determinism;
  CudnnMathType mathType;
  int reserved[3];
};
using CudnnConvolutionFwdAlgoPerf = CudnnAlgoPerf<CudnnConvolutionFwdAlgo>;
using CudnnConvolutionBwdDataAlgoPerf = CudnnAlgoPerf<CudnnConvolutionBwdDataAlgo>;
using CudnnConvolutionBwdFilterAlgoPerf = CudnnAlgoPerf<CudnnConvolutionBwdFilterAlgo>;

using CudnnCreateFn = CudnnStatus (*)(CudnnHandle* handle);
using CudnnDestroyFn = CudnnStatus (*)(CudnnHandle handle);
using CudnnSetStreamFn = CudnnStatus (*)(CudnnHandle handle, cudaStream_t stream);
using CudnnGetErrorStringFn = const char* (*)(CudnnStatus status);

using CudnnCreateTensorDescriptorFn = CudnnStatus (*)(CudnnTensorDescriptor* desc);
using CudnnDestroyTensorDescriptorFn = CudnnStatus (*)(CudnnTensorDescriptor desc);
using CudnnSetTensor4dDescriptorFn = CudnnStatus (*)(CudnnTensorDescriptor desc, CudnnTensorFormat format,
                                                     CudnnDataType dataType, int n, int c, int h, int w);
using CudnnCreateFilterDescriptorFn = CudnnStatus (*)(CudnnFilterDescriptor* desc);
using CudnnDestroyFilterDescriptorFn = CudnnStatus (*)(CudnnFilterDescriptor desc);
// k output channels, c input channels per group, h x w taps.
using CudnnSetFilter4dDescriptorFn = CudnnStatus (*)(CudnnFilterDescriptor desc, CudnnDataType dataType,
                                                     CudnnTensorFormat format, int k, int c, int h, int w);
using CudnnCreateConvolutionDescriptorFn = CudnnStatus (*)(CudnnConvolutionDescriptor* desc);
using CudnnDestroyConvolutionDescriptorFn = CudnnStatus (*)(CudnnConvolutionDescriptor desc);
using CudnnSetConvolution2dDescriptorFn = CudnnStatus (*)(CudnnConvolutionDescriptor desc, int padH, int padW,
                                                          int strideH, int strideW, int dilationH, int dilationW,
                                                          CudnnConvolutionMode mode, CudnnDataType computeType);
using CudnnSetConvolutionGroupCountFn = CudnnStatus (*)(CudnnConvolutionDescriptor desc, int groupCount);
using CudnnSetConvolutionMathTypeFn = CudnnStatus (*)(CudnnConvolutionDescriptor desc, CudnnMathType mathType);

using CudnnGetConvolutionForwardAlgorithmFn = CudnnStatus (*)(CudnnHandle handle, CudnnTensorDescriptor xDesc,
                                                              CudnnFilterDescriptor wDesc,
                                                              CudnnConvolutionDescriptor convDesc,
                                                              CudnnTensorDescriptor yDesc, int requestedAlgoCount,
                                                              int* returnedAlgoCount,
                                                              CudnnConvolutionFwdAlgoPerf* perfResults);
using CudnnGetConvolutionForwardWorkspaceSizeFn = CudnnStatus (*)(CudnnHandle handle, CudnnTensorDescriptor xDesc,
                                                                  CudnnFilterDescriptor wDesc,
                                                                  CudnnConvolutionDescriptor convDesc,
                                                                  CudnnTensorDescriptor yDesc,
                                                                  CudnnConvolutionFwdAlgo algo, size_t* sizeInBytes);
// y = alpha conv(x, w) + beta y; alpha and beta are host floats.
using CudnnConvolutionForwardFn = CudnnStatus (*)(CudnnHandle handle, const void* alpha, CudnnTensorDescriptor xDesc,
                                                  const void* x, CudnnFilterDescriptor wDesc, const void* w,
                                                  CudnnConvolutionDescriptor convDesc, CudnnConvolutionFwdAlgo algo,
                                                  void* workSpace, size_t workSpaceSizeInBytes, const void* beta,
                                                  CudnnTensorDescriptor yDesc, void* y);

using CudnnGetConvolutionBackwardDataAlgorithmFn = CudnnStatus (*)(CudnnHandle handle, CudnnFilterDescriptor wDesc,
                                                                   CudnnTensorDescriptor dyDesc,
                                                                   CudnnConvolutionDescriptor convDesc,
                                                                   CudnnTensorDescriptor dxDesc, int requestedAlgoCount,
                                                                   int* returnedAlgoCount,
                                                                   CudnnConvolutionBwdDataAlgoPerf* perfResults);
using CudnnGetConvolutionBackwardDataWorkspaceSizeFn = CudnnStatus (*)(
    CudnnHandle handle, CudnnFilterDescriptor wDesc, CudnnTensorDescriptor dyDesc, CudnnConvolutionDescriptor convDesc,
    CudnnTensorDescriptor dxDesc, CudnnConvolutionBwdDataAlgo algo, size_t* sizeInBytes);
// dx = alpha conv^T(dy, w) + beta dx.
using CudnnConvolutionBackwardDataFn = CudnnStatus (*)(
    CudnnHandle handle, const void* alpha, CudnnFilterDescriptor wDesc, const void* w, CudnnTensorDescriptor dyDesc,
    const void* dy, CudnnConvolutionDescriptor convDesc, CudnnConvolutionBwdDataAlgo algo, void* workSpace,
    size_t workSpaceSizeInBytes, const void* beta, CudnnTensorDescriptor dxDesc, void* dx);

using CudnnGetConvolutionBackwardFilterAlgorithmFn = CudnnStatus (*)(CudnnHandle handle, CudnnTensorDescriptor xDesc,
                                                                     CudnnTensorDescriptor dyDesc,
                                                                     CudnnConvolutionDescriptor convDesc,
                                                                     CudnnFilterDescriptor dwDesc,
                                                                     int requestedAlgoCount, int* returnedAlgoCount,
                                                                     CudnnConvolutionBwdFilterAlgoPerf* perfResults);
using CudnnGetConvolutionBackwardFilterWorkspaceSizeFn = CudnnStatus (*)(
    CudnnHandle handle, CudnnTensorDescriptor xDesc, CudnnTensorDescriptor dyDesc, CudnnConvolutionDescriptor convDesc,
    CudnnFilterDescriptor dwDesc, CudnnConvolutionBwdFilterAlgo algo, size_t* sizeInBytes);
// dw = alpha sum over the batch of dy (x) x + beta dw.
using CudnnConvolutionBackwardFilterFn = CudnnStatus (*)(
    CudnnHandle handle, const void* alpha, CudnnTensorDescriptor xDesc, const void* x, CudnnTensorDescriptor dyDesc,
    const void* dy, CudnnConvolutionDescriptor convDesc, CudnnConvolutionBwdFilterAlgo algo, void* workSpace,
    size_t workSpaceSizeInBytes, const void* beta, CudnnFilterDescriptor dwDesc, void* dw);

inline constexpr const char* kCudnnCreate = "cudnnCreate";
inline constexpr const char* kCudnnDestroy = "cudnnDestroy";
inline constexpr const char* kCudnnSetStream = "cudnnSetStream";
inline constexpr const char* kCudnnGetErrorString = "cudnnGetErrorString";
inline constexpr const char* kCudnnCreateTensorDescriptor = "cudnnCreateTensorDescriptor";
inline constexpr const char* kCudnnDestroyTensorDescriptor = "cudnnDestroyTensorDescriptor";
inline constexpr const char* kCudnnSetTensor4dDescriptor = "cudnnSetTensor4dDescriptor";
inline constexpr const char* kCudnnCreateFilterDescriptor = "cudnnCreateFilterDescriptor";
inline constexpr const char* kCudnnDestroyFilterDescriptor = "cudnnDestroyFilterDescriptor";
inline constexpr const char* kCudnnSetFilter4dDescriptor = "cudnnSetFilter4dDescriptor";
inline constexpr const char* kCudnnCreateConvolutionDescriptor = "cudnnCreateConvolutionDescriptor";
inline constexpr const char* kCudnnDestroyConvolutionDescriptor = "cudnnDestroyConvolutionDescriptor";
inline constexpr const char* kCudnnSetConvolution2dDescriptor = "cudnnSetConvolution2dDescriptor";
inline constexpr const char* kCudnnSetConvolutionGroupCount = "cudnnSetConvolutionGroupCount";
inline constexpr const char* kCudnnSetConvolutionMathType = "cudnnSetConvolutionMathType";
inline constexpr const char* kCudnnGetConvolutionForwardAlgorithm = "cudnnGetConvolutionForwardAlgorithm_v7";
inline constexpr const char* kCudnnGetConvolutionForwardWorkspaceSize = "cudnnGetConvolutionForwardWorkspaceSize";
inline constexpr const char* kCudnnConvolutionForward = "cudnnConvolutionForward";
inline constexpr const char* kCudnnGetConvolutionBackwardDataAlgorithm = "cudnnGetConvolutionBackwardDataAlgorithm_v7";
inline constexpr const char* kCudnnGetConvolutionBackwardDataWorkspaceSize =
    "cudnnGetConvolutionBackwardDataWorkspaceSize";
inline constexpr const char* kCudnnConvolutionBackwardData = "cudnnConvolutionBackwardData";
inline constexpr const char* kCudnnGetConvolutionBackwardFilterAlgorithm =
    "cudnnGetConvolutionBackwardFilterAlgorithm_v7";
inline constexpr const char* kCudnnGetConvolutionBackwardFilterWorkspaceSize =
    "cudnnGetConvolutionBackwardFilterWorkspaceSize";
inline constexpr const char* kCudnnConvolutionBackwardFilter = "cudnnConvolutionBackwardFilter";

}  // namespace deepnode::cuda::nv
