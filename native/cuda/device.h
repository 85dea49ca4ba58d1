// The device layer under the allocator, the copies and the kernels: CUDA's runtime in
// device_cuda.cu, plain host memory in the host emulation (emu/device_emu.cc). Failures
// other than running out of memory throw KernelError("ERR_CUDA") naming the call, the
// runtime's named status and the device.
#pragma once

#include <cstddef>

namespace deepnode::cuda::device {

enum class Copy { ToDevice, ToHost, OnDevice };

// The largest copy to the device that is staged in pinned memory instead of waiting.
constexpr size_t kStagedCopyMax = size_t(16) << 20;

// "cuda", or "host emulation" for the test build.
const char* flavour();
// The number of devices (the emulation has one).
int count();
// Makes `device` the calling thread's current device.
void activate(int device);
// Memory straight from the device: nullptr when the device has none left.
void* rawAlloc(int device, size_t bytes);
void rawFree(int device, void* data);
// Host memory that kernels on `device` read and write too (pinned and mapped), for the
// deferred checks' failure record; *onDevice gets the address kernels use. Never freed.
void* hostVisibleAlloc(int device, size_t bytes, void** onDevice);
// Free and total bytes of the device.
void memoryInfo(int device, size_t& freeBytes, size_t& totalBytes);
// The device's stream (a cudaStream_t), created on first use.
void* stream(int device);
// Queued on the device's stream; the caller may reuse host memory when it returns. A copy to
// the host waits for the stream, and so for every kernel queued before it. A copy to the
// device (up to kStagedCopyMax) is staged in pinned memory and does not wait; a larger one
// waits. Every wait here and in synchronize is counted (waits.h), in both builds alike.
void copy(int device, void* dst, const void* src, size_t bytes, Copy kind);
// Sets every byte to `value`, queued on the stream (zero-fills and poison).
void fill(int device, void* dst, unsigned char value, size_t bytes);
void synchronize(int device);
// Reports a failed launch of `kernel` (cudaGetLastError) on the current device.
void checkLaunch(int device, const char* kernel);

}  // namespace deepnode::cuda::device
