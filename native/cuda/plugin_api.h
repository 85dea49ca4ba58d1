// The C interface between the addon and the CUDA plugin (deepnode_cuda.so). The addon
// opens the plugin with dlopen on the first request for `cuda` and calls only what is
// declared here, so a machine without CUDA never loads a CUDA library. Plain C types
// only: the two sides may come from different compilers.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bumped whenever a struct below or a function's meaning changes; the addon refuses a
// plugin whose number differs from its own.
#define DEEPNODE_CUDA_ABI_VERSION 1

#define DEEPNODE_CUDA_MAX_DEVICES 16
#define DEEPNODE_CUDA_MAX_LIBRARIES 3

typedef struct {
  char name[256];
  int major;  // compute capability
  int minor;
  size_t totalMemory;  // bytes
} DeepnodeCudaDevice;

// One of the libraries the plugin opens at run time (cuBLAS, cuBLASLt, cuDNN).
typedef struct {
  char name[32];     // "cublas", "cublasLt", "cudnn"
  char path[1024];   // the file that was opened; empty when none could be
  char version[32];  // as the library reports it, e.g. "13.0.0"; empty when not loaded
  char error[1024];  // every place tried, with dlopen's reason, when not loaded
} DeepnodeCudaLibrary;

typedef struct {
  int abiVersion;
  int runtimeVersion;  // of the statically linked CUDA runtime, e.g. 13000
  int driverVersion;   // the CUDA version the driver supports; 0 without a driver
  int deviceCount;
  DeepnodeCudaDevice devices[DEEPNODE_CUDA_MAX_DEVICES];
  int libraryCount;
  DeepnodeCudaLibrary libraries[DEEPNODE_CUDA_MAX_LIBRARIES];
  char error[1024];  // why no GPU can be used (no driver, no device, ...); empty when one can
} DeepnodeCudaReport;

// Fills `report`: the driver, the devices and the libraries found. `libraryDirs` holds
// `dirCount` folders searched, in order, before the system's library path. Never
// throws and never aborts; always returns 0 (a failure is described in the report).
typedef int (*DeepnodeCudaProbeFn)(const char* const* libraryDirs, int dirCount, DeepnodeCudaReport* report);

#define DEEPNODE_CUDA_PROBE_SYMBOL "deepnode_cuda_probe"

#ifdef __cplusplus
}
#endif
