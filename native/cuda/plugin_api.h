// The C interface between the addon and the CUDA plugin (deepnode_cuda.so). The addon
// opens the plugin with dlopen on the first request for `cuda` and calls only what is
// declared here, so a machine without CUDA never loads a CUDA library. Plain C types
// only: the two sides may come from different compilers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bumped whenever a struct below or a function's meaning changes, kernels' buffers and
// attributes included (6: batch_norm's running statistics, scale_in_place's maxNorm); the
// addon refuses a plugin whose number differs from its own.
#define DEEPNODE_CUDA_ABI_VERSION 6

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

// ---- Device memory and kernels ----------------------------------------------------

// A failure: `code` is one of deepnode's error codes (ERR_SHAPE, ERR_DTYPE, ERR_VALUE,
// ERR_INDEX, ERR_NOT_SUPPORTED, ERR_OUT_OF_MEMORY, ERR_CUDA, ERR_NATIVE) and `message`
// names the call, the library's status and the device.
typedef struct {
  char code[32];
  char message[2048];
} DeepnodeCudaError;

// One kernel argument: device memory holding `size` elements of `dtype` (the order of
// deepnode::DType: float32, float64, int32, uint8, int8); data is NULL for an absent one.
typedef struct {
  void* data;
  int64_t size;
  int dtype;
} DeepnodeCudaBuffer;

#define DEEPNODE_CUDA_ATTR_NUMBER 0
#define DEEPNODE_CUDA_ATTR_BOOL 1
#define DEEPNODE_CUDA_ATTR_STRING 2
#define DEEPNODE_CUDA_ATTR_LIST 3

// One named kernel attribute, as the addon's cpu kernels receive them.
typedef struct {
  const char* name;
  int kind;
  double number;       // NUMBER, and BOOL as 0 or 1
  const char* string;  // STRING
  const double* list;  // LIST
  int64_t listSize;
} DeepnodeCudaAttr;

// The caching allocator's figures for one device, in bytes.
typedef struct {
  int64_t allocated;          // held by live buffers
  int64_t reserved;           // obtained from the device: allocated plus the cache
  int64_t peakAllocated;      // the most `allocated` has been
  int64_t liveBuffers;        // buffers not yet freed
  int64_t deviceAllocations;  // calls that reached the device's allocator
  int64_t cacheHits;          // allocations served from the cache
  int64_t oomRetries;         // allocations retried after emptying the cache
} DeepnodeCudaMemoryStats;

#define DEEPNODE_CUDA_MAX_WAIT_OPS 64

typedef struct {
  char op[64];  // the kernel's name
  int64_t count;
} DeepnodeCudaOpWaits;

// How many times the host has waited for one device's stream (waits.h), by what waited.
typedef struct {
  int64_t reads;         // copies to the host (reading a tensor's values)
  int64_t synchronizes;  // synchronize calls
  int64_t uploads;       // copies to the device that could not be staged
  int64_t allocations;   // allocations that emptied the cache to retry
  int64_t other;         // anything else (emptyCache)
  int opCount;           // ops that read a value back inside, most waits first
  DeepnodeCudaOpWaits ops[DEEPNODE_CUDA_MAX_WAIT_OPS];
  int64_t opsLeftOut;  // waits of ops past the first DEEPNODE_CUDA_MAX_WAIT_OPS
} DeepnodeCudaWaitStats;

// Every function returns 0 on success and otherwise fills `error` (never NULL) and
// returns non-zero; none throws or aborts. `device` is the ordinal of cuda:N. Work is
// queued on the device's stream; copyToHost and synchronize wait for it (they may be
// called from a thread other than the one queueing work) and then throw the first failure
// the deferred data checks found (checks.h). copyToDevice is done with its host source when
// it returns: it copies it into pinned staging memory, or waits for the stream.
typedef struct {
  int abiVersion;
  // What this plugin is: "cuda" for the real one, "host emulation" for the test build.
  const char* flavour;
  // Sets every byte of the new memory to `fillByte` (0: zero-filled, as the cpu backend's
  // storage; 0xFF: poisoned), queued on the stream; -1 leaves it as it comes.
  int (*alloc)(int device, size_t bytes, int fillByte, void** data, DeepnodeCudaError* error);
  // Returns the memory to the cache; later work on the stream may reuse it.
  int (*release)(int device, void* data, DeepnodeCudaError* error);
  int (*copyToDevice)(int device, void* dst, const void* src, size_t bytes, DeepnodeCudaError* error);
  int (*copyToHost)(int device, void* dst, const void* src, size_t bytes, DeepnodeCudaError* error);
  int (*copyOnDevice)(int device, void* dst, const void* src, size_t bytes, DeepnodeCudaError* error);
  int (*synchronize)(int device, DeepnodeCudaError* error);
  int (*run)(int device, const char* op, const DeepnodeCudaBuffer* buffers, int bufferCount,
             const DeepnodeCudaAttr* attrs, int attrCount, DeepnodeCudaError* error);
  int (*memoryStats)(int device, DeepnodeCudaMemoryStats* stats, DeepnodeCudaError* error);
  int (*emptyCache)(int device, DeepnodeCudaError* error);
  int (*waitStats)(int device, DeepnodeCudaWaitStats* stats, DeepnodeCudaError* error);
  // The plugin's own kernels launched on `device` since it was loaded (cuBLAS and cuDNN
  // calls launch kernels of their own, not counted); the host emulation counts the launches
  // the GPU build would make.
  int (*launchCount)(int device, int64_t* launches, DeepnodeCudaError* error);
  // Named switches: "allow_tf32" (0 or 1, default 0), "memory_limit" (bytes, 0: none).
  int (*setOption)(const char* name, double value, DeepnodeCudaError* error);
  // The kernel names `run` accepts, separated by commas.
  const char* kernelNames;
} DeepnodeCudaApi;

typedef const DeepnodeCudaApi* (*DeepnodeCudaApiFn)(void);

#define DEEPNODE_CUDA_API_SYMBOL "deepnode_cuda_api"

#ifdef __cplusplus
}
#endif
