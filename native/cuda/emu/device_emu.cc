// The host emulation of the device layer (see device.h), for testing the CUDA plugin on
// machines without a GPU: one "device" whose memory is host memory and whose stream runs
// each kernel to completion inside its launch (launch.h's loop). It lets the cuda backend,
// the plugin's C interface, the allocator and every kernel's indexing run under the
// conformance suite in CI. It is never picked by itself: a test points
// DEEPNODE_CUDA_PLUGIN at deepnode_cuda_emu.so.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../context.h"
#include "../device.h"
#include "../plugin_api.h"
#include "../waits.h"

namespace deepnode::cuda::device {

constexpr size_t kEmulatedMemoryBytes = size_t(4) << 30;

const char* flavour() {
  return "host emulation";
}

int count() {
  return 1;
}

void activate(int) {}

void* rawAlloc(int, size_t bytes) {
  return std::malloc(bytes);
}

void rawFree(int, void* data) {
  std::free(data);
}

void* hostVisibleAlloc(int, size_t bytes, void** onDevice) {
  void* data = std::calloc(1, bytes);
  if (data == nullptr) throw KernelError("ERR_OUT_OF_MEMORY", "out of host memory for the deferred checks' record");
  *onDevice = data;
  return data;
}

void memoryInfo(int, size_t& freeBytes, size_t& totalBytes) {
  totalBytes = kEmulatedMemoryBytes;
  freeBytes = kEmulatedMemoryBytes;
}

void* stream(int) {
  return nullptr;
}

// Waits where the GPU build would (device.h): for a copy to the host, and for a copy to the
// device too large to stage. (The GPU build also waits when every staging block is busy.)
void copy(int device, void* dst, const void* src, size_t bytes, Copy kind) {
  if (bytes == 0) return;
  std::memmove(dst, src, bytes);
  if (kind == Copy::ToHost || (kind == Copy::ToDevice && bytes > kStagedCopyMax)) waits::note(device);
}

void fill(int, void* dst, unsigned char value, size_t bytes) {
  if (bytes != 0) std::memset(dst, value, bytes);
}

void synchronize(int device) {
  waits::note(device);
}

void checkLaunch(int, const char*) {}

}  // namespace deepnode::cuda::device

// The emulation's answer to the probe: one device, and NVIDIA's libraries stood in for by
// the emulation's own host code.
extern "C" __attribute__((visibility("default"))) int deepnode_cuda_probe(const char* const*, int,
                                                                          DeepnodeCudaReport* report) {
  if (report == nullptr) return 0;
  *report = DeepnodeCudaReport{};
  report->abiVersion = DEEPNODE_CUDA_ABI_VERSION;
  report->deviceCount = 1;
  std::snprintf(report->devices[0].name, sizeof report->devices[0].name, "deepnode host emulation (not a GPU)");
  report->devices[0].major = 0;
  report->devices[0].minor = 0;
  report->devices[0].totalMemory = deepnode::cuda::device::kEmulatedMemoryBytes;
  const char* names[DEEPNODE_CUDA_MAX_LIBRARIES] = {"cublasLt", "cublas", "cudnn"};
  report->libraryCount = DEEPNODE_CUDA_MAX_LIBRARIES;
  for (int i = 0; i < DEEPNODE_CUDA_MAX_LIBRARIES; ++i) {
    std::snprintf(report->libraries[i].name, sizeof report->libraries[i].name, "%s", names[i]);
    std::snprintf(report->libraries[i].path, sizeof report->libraries[i].path, "(host emulation)");
    std::snprintf(report->libraries[i].version, sizeof report->libraries[i].version, "emulated");
  }
  return 0;
}
