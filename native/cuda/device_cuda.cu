// The device layer on CUDA's runtime (see device.h): one non-blocking stream per device,
// created on first use, and every runtime status checked.
#include <cuda_runtime_api.h>

#include <mutex>
#include <string>

#include "context.h"
#include "device.h"

namespace deepnode::cuda::device {
namespace {

void check(cudaError_t status, const char* call, int device) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky-free error so later calls are not blamed
  throw KernelError("ERR_CUDA", std::string(call) + " failed on " + deviceName(device) + ": " +
                                    cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

constexpr int kMaxDevices = 64;
cudaStream_t streams[kMaxDevices] = {};
std::mutex streamMutex;

}  // namespace

const char* flavour() {
  return "cuda";
}

int count() {
  int n = 0;
  check(cudaGetDeviceCount(&n), "cudaGetDeviceCount", 0);
  return n < kMaxDevices ? n : kMaxDevices;
}

void activate(int device) {
  check(cudaSetDevice(device), "cudaSetDevice", device);
}

void* rawAlloc(int device, size_t bytes) {
  void* data = nullptr;
  cudaError_t status = cudaMalloc(&data, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;
  }
  check(status, "cudaMalloc", device);
  return data;
}

void rawFree(int device, void* data) {
  check(cudaFree(data), "cudaFree", device);
}

void memoryInfo(int device, size_t& freeBytes, size_t& totalBytes) {
  if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
    cudaGetLastError();
    freeBytes = totalBytes = 0;
  }
  (void)device;
}

void* stream(int device) {
  std::lock_guard<std::mutex> lock(streamMutex);
  if (streams[device] == nullptr) {
    check(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking), "cudaStreamCreateWithFlags", device);
  }
  return streams[device];
}

void copy(int device, void* dst, const void* src, size_t bytes, Copy kind) {
  if (bytes == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream(device));
  cudaMemcpyKind direction = kind == Copy::ToDevice ? cudaMemcpyHostToDevice
                             : kind == Copy::ToHost ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice;
  check(cudaMemcpyAsync(dst, src, bytes, direction, s), "cudaMemcpyAsync", device);
  // Host memory here is pageable (typed arrays, the stack). From pageable memory the runtime
  // only says an async copy "might be synchronous", so a copy to the device also waits:
  // the caller may free or overwrite the source as soon as this returns. (A plain
  // cudaMemcpy would run on the legacy default stream, which our non-blocking stream does
  // not wait for, so it could overwrite a cached block that queued kernels still use.)
  if (kind != Copy::OnDevice) check(cudaStreamSynchronize(s), "cudaStreamSynchronize", device);
}

void fill(int device, void* dst, unsigned char value, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(dst, value, bytes, static_cast<cudaStream_t>(stream(device))), "cudaMemsetAsync", device);
}

void synchronize(int device) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream(device))), "cudaStreamSynchronize", device);
}

void checkLaunch(int device, const char* kernel) {
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw KernelError("ERR_CUDA", std::string("launching the ") + kernel + " kernel failed on " + deviceName(device) +
                                      ": " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
  }
}

}  // namespace deepnode::cuda::device
