// The device layer on CUDA's runtime (see device.h): one non-blocking stream per device,
// created on first use, pinned staging blocks for uploads, and every runtime status checked.
#include <cuda_runtime_api.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "context.h"
#include "device.h"
#include "waits.h"

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

// Copies to the device of up to kStagedCopyMax bytes go through pinned staging blocks, so
// they need not wait for the stream: the source is copied into a block at once (the caller
// may reuse it when copy returns), the block's copy is queued, and an event recorded after it
// says when the block may be reused. Up to kStagingBlocks blocks and kStagingTotal bytes per
// device; when none of those is free (the device is far behind), or for a larger copy, the
// copy waits for the stream instead, which also lets the device catch up.
constexpr size_t kStagingTotal = size_t(256) << 20;
constexpr size_t kStagingBlocks = 64;
constexpr size_t kStagingBlockMin = size_t(64) << 10;

struct StagingBlock {
  void* data;
  size_t bytes;
  cudaEvent_t done;  // recorded after the block's last copy (never recorded: free)
};

struct Staging {
  std::mutex mutex;
  std::vector<StagingBlock> blocks;
  size_t total = 0;
};
Staging staging[kMaxDevices];

bool finished(cudaEvent_t event, int device) {
  cudaError_t status = cudaEventQuery(event);
  if (status == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  check(status, "cudaEventQuery", device);
  return true;
}

// The smallest free block of at least `bytes`, or a new one; -1 when the budget is spent or
// no pinned memory is left (the caller then copies from pageable memory and waits).
int stagingBlock(Staging& pool, int device, size_t bytes) {
  int best = -1;
  for (size_t i = 0; i < pool.blocks.size(); ++i) {
    const StagingBlock& block = pool.blocks[i];
    if (block.bytes < bytes || (best >= 0 && block.bytes >= pool.blocks[best].bytes)) continue;
    if (finished(block.done, device)) best = static_cast<int>(i);
  }
  if (best >= 0) return best;
  if (pool.blocks.size() >= kStagingBlocks) return -1;
  size_t size = kStagingBlockMin;
  while (size < bytes) size *= 2;
  if (pool.total + size > kStagingTotal) return -1;
  StagingBlock block{nullptr, size, nullptr};
  if (cudaHostAlloc(&block.data, size, cudaHostAllocPortable) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  const cudaError_t created = cudaEventCreateWithFlags(&block.done, cudaEventDisableTiming);
  if (created != cudaSuccess) cudaFreeHost(block.data);  // not yet in the pool, which would keep it
  check(created, "cudaEventCreateWithFlags", device);
  pool.blocks.push_back(block);
  pool.total += size;
  return static_cast<int>(pool.blocks.size() - 1);
}

// Queues a copy of `bytes` from host memory through a staging block; false when none was had.
bool stagedUpload(int device, cudaStream_t s, void* dst, const void* src, size_t bytes) {
  if (bytes > kStagedCopyMax) return false;
  Staging& pool = staging[device];
  std::lock_guard<std::mutex> lock(pool.mutex);
  const int index = stagingBlock(pool, device, bytes);
  if (index < 0) return false;
  StagingBlock& block = pool.blocks[static_cast<size_t>(index)];
  std::memcpy(block.data, src, bytes);
  check(cudaMemcpyAsync(dst, block.data, bytes, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync", device);
  // Unrecorded, the event still says the block's previous copy is done, so the next upload
  // could overwrite the block while this copy reads it: let this copy finish first.
  const cudaError_t recorded = cudaEventRecord(block.done, s);
  if (recorded != cudaSuccess) {
    waits::note(device);
    cudaStreamSynchronize(s);
  }
  check(recorded, "cudaEventRecord", device);
  return true;
}

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

void* hostVisibleAlloc(int device, size_t bytes, void** onDevice) {
  void* data = nullptr;
  check(cudaHostAlloc(&data, bytes, cudaHostAllocMapped | cudaHostAllocPortable), "cudaHostAlloc", device);
  std::memset(data, 0, bytes);
  const cudaError_t mapped = cudaHostGetDevicePointer(onDevice, data, 0);
  if (mapped != cudaSuccess) cudaFreeHost(data);  // the caller keeps none, and asks again at the next check
  check(mapped, "cudaHostGetDevicePointer", device);
  return data;
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
  if (kind == Copy::ToDevice && stagedUpload(device, s, dst, src, bytes)) return;
  cudaMemcpyKind direction = kind == Copy::ToDevice ? cudaMemcpyHostToDevice
                             : kind == Copy::ToHost ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice;
  check(cudaMemcpyAsync(dst, src, bytes, direction, s), "cudaMemcpyAsync", device);
  // Host memory here is pageable (typed arrays, the stack). From pageable memory the runtime
  // only says an async copy "might be synchronous", so an unstaged copy to the device waits
  // too: the caller may free or overwrite the source as soon as this returns. (A plain
  // cudaMemcpy would run on the legacy default stream, which our non-blocking stream does
  // not wait for, so it could overwrite a cached block that queued kernels still use.)
  if (kind != Copy::OnDevice) synchronize(device);
}

void fill(int device, void* dst, unsigned char value, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(dst, value, bytes, static_cast<cudaStream_t>(stream(device))), "cudaMemsetAsync", device);
}

void synchronize(int device) {
  waits::note(device);
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
