// See nvlibs_loader.h.
#include "nvlibs_loader.h"

#include <dlfcn.h>

#include <map>
#include <mutex>

#include "context.h"
#ifdef DEEPNODE_CUDA_EMULATION
#include "emu/fake_nvlibs.h"
#endif

namespace deepnode::cuda::nv {
namespace {

struct LibraryInfo {
  const char* title;   // for messages
  const char* soname;  // what the probe opens
  void* handle = nullptr;
  std::string error;
};

std::mutex libraryMutex;
LibraryInfo libraries[2] = {{"cuBLAS", "libcublas.so.13"}, {"cuDNN", "libcudnn.so.9"}};

LibraryInfo& info(Library library) {
  return libraries[library == Library::Cublas ? 0 : 1];
}

#ifdef DEEPNODE_CUDA_EMULATION
void* lookup(Library library, const char* name) {
  return library == Library::Cublas ? emu::fakeCublasSymbol(name) : emu::fakeCudnnSymbol(name);
}
#else
// The probe's handle; without a probe (or when it found nothing) the system's path.
void* libraryHandle(Library library) {
  std::lock_guard<std::mutex> lock(libraryMutex);
  LibraryInfo& lib = info(library);
  if (lib.handle == nullptr) lib.handle = dlopen(lib.soname, RTLD_NOW | RTLD_GLOBAL);
  if (lib.handle == nullptr) {
    const char* dlReason = dlerror();
    std::string reason = !lib.error.empty() ? lib.error : dlReason != nullptr ? dlReason : "";
    throw KernelError("ERR_NOT_SUPPORTED", std::string(lib.title) + " is not loaded (" + lib.soname +
                                               (reason.empty() ? "" : ": " + reason) + ")");
  }
  return lib.handle;
}

void* lookup(Library library, const char* name) {
  return dlsym(libraryHandle(library), name);
}
#endif

template <typename Fn>
void resolve(Library library, Fn& fn, const char* name) {
  void* symbol = lookup(library, name);
  if (symbol == nullptr) {
    throw KernelError("ERR_NOT_SUPPORTED",
                      std::string(info(library).title) + " (" + info(library).soname + ") has no entry point " + name);
  }
  fn = reinterpret_cast<Fn>(symbol);
}

CublasApi loadCublas() {
  CublasApi api{};
  const Library lib = Library::Cublas;
  resolve(lib, api.create, kCublasCreate);
  resolve(lib, api.destroy, kCublasDestroy);
  resolve(lib, api.setStream, kCublasSetStream);
  resolve(lib, api.setMathMode, kCublasSetMathMode);
  resolve(lib, api.sgemmStridedBatched, kCublasSgemmStridedBatched);
  return api;
}

void loadCudnnDescriptors(CudnnApi& api) {
  const Library lib = Library::Cudnn;
  resolve(lib, api.createTensorDescriptor, kCudnnCreateTensorDescriptor);
  resolve(lib, api.destroyTensorDescriptor, kCudnnDestroyTensorDescriptor);
  resolve(lib, api.setTensor4dDescriptor, kCudnnSetTensor4dDescriptor);
  resolve(lib, api.createFilterDescriptor, kCudnnCreateFilterDescriptor);
  resolve(lib, api.destroyFilterDescriptor, kCudnnDestroyFilterDescriptor);
  resolve(lib, api.setFilter4dDescriptor, kCudnnSetFilter4dDescriptor);
  resolve(lib, api.createConvolutionDescriptor, kCudnnCreateConvolutionDescriptor);
  resolve(lib, api.destroyConvolutionDescriptor, kCudnnDestroyConvolutionDescriptor);
  resolve(lib, api.setConvolution2dDescriptor, kCudnnSetConvolution2dDescriptor);
  resolve(lib, api.setConvolutionGroupCount, kCudnnSetConvolutionGroupCount);
  resolve(lib, api.setConvolutionMathType, kCudnnSetConvolutionMathType);
}

void loadCudnnConvolutions(CudnnApi& api) {
  const Library lib = Library::Cudnn;
  resolve(lib, api.getConvolutionForwardAlgorithm, kCudnnGetConvolutionForwardAlgorithm);
  resolve(lib, api.getConvolutionForwardWorkspaceSize, kCudnnGetConvolutionForwardWorkspaceSize);
  resolve(lib, api.convolutionForward, kCudnnConvolutionForward);
  resolve(lib, api.getConvolutionBackwardDataAlgorithm, kCudnnGetConvolutionBackwardDataAlgorithm);
  resolve(lib, api.getConvolutionBackwardDataWorkspaceSize, kCudnnGetConvolutionBackwardDataWorkspaceSize);
  resolve(lib, api.convolutionBackwardData, kCudnnConvolutionBackwardData);
  resolve(lib, api.getConvolutionBackwardFilterAlgorithm, kCudnnGetConvolutionBackwardFilterAlgorithm);
  resolve(lib, api.getConvolutionBackwardFilterWorkspaceSize, kCudnnGetConvolutionBackwardFilterWorkspaceSize);
  resolve(lib, api.convolutionBackwardFilter, kCudnnConvolutionBackwardFilter);
}

CudnnApi loadCudnn() {
  CudnnApi api{};
  const Library lib = Library::Cudnn;
  resolve(lib, api.create, kCudnnCreate);
  resolve(lib, api.destroy, kCudnnDestroy);
  resolve(lib, api.setStream, kCudnnSetStream);
  resolve(lib, api.getErrorString, kCudnnGetErrorString);
  loadCudnnDescriptors(api);
  loadCudnnConvolutions(api);
  return api;
}

// Handles live for the life of the process: destroying them at exit could run after the
// CUDA runtime has torn the device's context down.
std::mutex handleMutex;
std::map<int, CublasHandle> cublasHandles;
std::map<int, CudnnHandle> cudnnHandles;

}  // namespace

// The first library found stays: a later probe (of other folders) must not swap the cuDNN
// that kernels may already have resolved functions from for another file.
void rememberLibrary(Library library, void* handle, const std::string& error) {
  std::lock_guard<std::mutex> lock(libraryMutex);
  LibraryInfo& lib = info(library);
  if (lib.handle != nullptr) return;
  lib.handle = handle;
  lib.error = error;
}

// A static initialised by a function that throws is tried again on the next call.
const CublasApi& cublas() {
  static const CublasApi api = loadCublas();
  return api;
}

const CudnnApi& cudnn() {
  static const CudnnApi api = loadCudnn();
  return api;
}

namespace {

// The current device's handle of a library (created on first use), bound to the current
// stream; createName and setStreamName name the calls in errors.
template <typename Api, typename Handle>
Handle streamHandle(const Api& api, std::map<int, Handle>& handles, const char* createName, const char* setStreamName) {
  std::lock_guard<std::mutex> lock(handleMutex);
  Handle& handle = handles[currentDevice()];
  if (handle == nullptr) check(api.create(&handle), createName);
  check(api.setStream(handle, static_cast<cudaStream_t>(currentStream())), setStreamName);
  return handle;
}

}  // namespace

CublasHandle cublasHandle() {
  return streamHandle(cublas(), cublasHandles, kCublasCreate, kCublasSetStream);
}

CudnnHandle cudnnHandle() {
  return streamHandle(cudnn(), cudnnHandles, kCudnnCreate, kCudnnSetStream);
}

const char* cublasStatusName(CublasStatus status) {
  switch (status) {
    case CublasStatus::Success: return "CUBLAS_STATUS_SUCCESS";
    case CublasStatus::NotInitialized: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CublasStatus::AllocFailed: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CublasStatus::InvalidValue: return "CUBLAS_STATUS_INVALID_VALUE";
    case CublasStatus::ArchMismatch: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CublasStatus::MappingError: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CublasStatus::ExecutionFailed: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CublasStatus::InternalError: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CublasStatus::NotSupported: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CublasStatus::LicenseError: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

void check(CublasStatus status, const char* call) {
  if (status == CublasStatus::Success) return;
  failStatus("cuBLAS", call, static_cast<int>(status), cublasStatusName(status));
}

void check(CudnnStatus status, const char* call) {
  if (status == CudnnStatus::Success) return;
  const char* name = cudnn().getErrorString(status);
  failStatus("cuDNN", call, static_cast<int>(status), name == nullptr ? "unknown" : name);
}

}  // namespace deepnode::cuda::nv
