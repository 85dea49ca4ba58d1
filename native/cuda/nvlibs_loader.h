// cuBLAS and cuDNN at run time: the probe (probe.cu) hands over the libraries it opened;
// each library's entry points are resolved with dlsym on first use, and each device gets
// one cuBLAS and one cuDNN handle, bound to its stream before every use. In the host
// emulation the same entry points come from fake libraries written from the documented
// semantics (emu/fake_cublas.cc, emu/fake_cudnn.cc), so the kernels' argument mapping is
// tested without a GPU. Every status goes through check(), which throws ERR_CUDA naming
// the call, the status and the device (context.h failStatus).
#pragma once

#include <string>

#include "nvlibs.h"

namespace deepnode::cuda::nv {

enum class Library { Cublas, Cudnn };

// Called by the probe with what dlopen returned (nullptr when the library was not found,
// with `error` saying why).
void rememberLibrary(Library library, void* handle, const std::string& error);

struct CublasApi {
  CublasCreateFn create;
  CublasDestroyFn destroy;
  CublasSetStreamFn setStream;
  CublasSetMathModeFn setMathMode;
  CublasSgemmStridedBatchedFn sgemmStridedBatched;
};

struct CudnnApi {
  CudnnCreateFn create;
  CudnnDestroyFn destroy;
  CudnnSetStreamFn setStream;
  CudnnGetErrorStringFn getErrorString;
  CudnnCreateTensorDescriptorFn createTensorDescriptor;
  CudnnDestroyTensorDescriptorFn destroyTensorDescriptor;
  CudnnSetTensor4dDescriptorFn setTensor4dDescriptor;
  CudnnCreateFilterDescriptorFn createFilterDescriptor;
  CudnnDestroyFilterDescriptorFn destroyFilterDescriptor;
  CudnnSetFilter4dDescriptorFn setFilter4dDescriptor;
  CudnnCreateConvolutionDescriptorFn createConvolutionDescriptor;
  CudnnDestroyConvolutionDescriptorFn destroyConvolutionDescriptor;
  CudnnSetConvolution2dDescriptorFn setConvolution2dDescriptor;
  CudnnSetConvolutionGroupCountFn setConvolutionGroupCount;
  CudnnSetConvolutionMathTypeFn setConvolutionMathType;
  CudnnGetConvolutionForwardAlgorithmFn getConvolutionForwardAlgorithm;
  CudnnGetConvolutionForwardWorkspaceSizeFn getConvolutionForwardWorkspaceSize;
  CudnnConvolutionForwardFn convolutionForward;
  CudnnGetConvolutionBackwardDataAlgorithmFn getConvolutionBackwardDataAlgorithm;
  CudnnGetConvolutionBackwardDataWorkspaceSizeFn getConvolutionBackwardDataWorkspaceSize;
  CudnnConvolutionBackwardDataFn convolutionBackwardData;
  CudnnGetConvolutionBackwardFilterAlgorithmFn getConvolutionBackwardFilterAlgorithm;
  CudnnGetConvolutionBackwardFilterWorkspaceSizeFn getConvolutionBackwardFilterWorkspaceSize;
  CudnnConvolutionBackwardFilterFn convolutionBackwardFilter;
};

// Every entry point, resolved on first use; ERR_NOT_SUPPORTED naming the library or the
// symbol that is missing.
const CublasApi& cublas();
const CudnnApi& cudnn();

// The current device's handle, bound to currentStream().
CublasHandle cublasHandle();
CudnnHandle cudnnHandle();

// ERR_CUDA naming `call`, the status's name and the device, unless the status is success.
void check(CublasStatus status, const char* call);
void check(CudnnStatus status, const char* call);

// "CUBLAS_STATUS_INVALID_VALUE" and so on.
const char* cublasStatusName(CublasStatus status);

}  // namespace deepnode::cuda::nv
