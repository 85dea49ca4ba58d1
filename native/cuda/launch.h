// Launching element-parallel work: forEach(name, n, f) calls f(i) for every i in [0, n).
// Under nvcc it is a grid-stride kernel on the current stream; in the host emulation
// (the plugin built by g++ for tests, see emu/) it is a plain loop over the same f. Kernel
// files write their per-element work as `[=] DEEPNODE_HD (int64_t i) { ... }` lambdas
// (nvcc --extended-lambda), so one source serves both builds. Work that needs block-level
// cooperation is written as per-output loops or chunked passes, which both builds run.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../core/hd.h"
#include "context.h"

namespace deepnode::cuda {

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 65535LL * 16;

#ifdef __CUDACC__
template <typename F>
__global__ void forEachKernel(int64_t n, F f) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

template <typename F>
void forEach(const char* name, int64_t n, F f) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>((n + kThreadsPerBlock - 1) / kThreadsPerBlock, kMaxBlocks);
  noteLaunch();
  cudaGetLastError();  // an error left by an earlier call must not be blamed on this launch
  forEachKernel<<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, static_cast<cudaStream_t>(currentStream())>>>(n,
                                                                                                                    f);
  checkLaunch(name);
}
#else
template <typename F>
void forEach(const char*, int64_t n, F f) {
  if (n <= 0) return;
  noteLaunch();  // the launch the GPU build would make
  for (int64_t i = 0; i < n; ++i) f(i);
}
#endif

// Atomic accumulation for scatters (gradients of gathers, pooling, embeddings): atomicAdd
// on a device, a plain add in the host emulation, which runs one element at a time.
template <typename T>
DEEPNODE_HD inline void atomicAddTo(T* address, T value) {
#ifdef __CUDA_ARCH__
  atomicAdd(address, value);
#else
  *address += value;
#endif
}

}  // namespace deepnode::cuda
