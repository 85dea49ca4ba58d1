// What a CUDA kernel sees of the plugin: the device it runs on, that device's stream,
// device scratch memory from the caching allocator, and the checks that turn a CUDA,
// cuBLAS or cuDNN status into a KernelError naming the call, the status and the device.
// Nothing here includes CUDA's headers, so the host emulation (emu/) compiles it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/kernel.h"

namespace deepnode::cuda {

// The ordinal of the device the current `run` targets (set by api.cc around each call).
int currentDevice();
// That device's stream as a cudaStream_t (nullptr in the host emulation).
void* currentStream();

// Whether matmuls may use TF32 tensor cores (the allow_tf32 option; off by default).
bool tf32Allowed();

// "cuda:N", for messages.
std::string deviceName(int device);

// Throws KernelError("ERR_CUDA") naming the library call, its named status and the device.
[[noreturn]] void failStatus(const char* library, const char* call, int status, const std::string& statusName);

// Counts a launch of one of the plugin's kernels on the current device (launch.h and
// reductions.h call it in both builds), for the API's launchCount.
void noteLaunch();

// After a kernel launch: turns a launch error (bad configuration, no kernel image for this
// GPU) into a KernelError naming the kernel. Does not wait for the kernel.
void checkLaunch(const char* kernel);

// Device memory for one call's temporaries, from the caching allocator; returned to the
// cache when it goes out of scope. Reuse by later work is ordered by the stream.
class Scratch {
 public:
  explicit Scratch(size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  int device_ = 0;
};

// A copy on the current stream that waits for it, so it sees every earlier kernel's
// writes (used to read back an error flag or a small result); and a queued zero fill.
void copyToHostNow(void* dst, const void* src, size_t bytes);
void fillZeroAsync(void* dst, size_t bytes);

}  // namespace deepnode::cuda
