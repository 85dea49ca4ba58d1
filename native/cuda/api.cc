// The plugin's C interface (plugin_api.h): every entry point catches what the layers
// below throw and reports it in a DeepnodeCudaError, so nothing unwinds into the addon.
// `run` rebuilds the addon's KernelCall from plain C arguments and calls the kernel of
// that name on the device's stream.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "../core/call_cache.h"
#include "../core/kernel.h"
#include "allocator.h"
#include "checks.h"
#include "context.h"
#include "device.h"
#include "kernels.h"
#include "plugin_api.h"
#include "waits.h"

namespace deepnode::cuda {
namespace {

thread_local int runningDevice = 0;

void setError(DeepnodeCudaError* error, const std::string& code, const std::string& message) {
  if (error == nullptr) return;
  std::snprintf(error->code, sizeof error->code, "%s", code.c_str());
  std::snprintf(error->message, sizeof error->message, "%s", message.c_str());
}

// Runs `body`, turning any exception into an error report and a non-zero return.
template <typename Body>
int guarded(DeepnodeCudaError* error, Body&& body) {
  try {
    body();
    return 0;
  } catch (const KernelError& e) {
    setError(error, e.code, e.what());
  } catch (const std::bad_alloc&) {
    setError(error, "ERR_OUT_OF_MEMORY", "out of host memory");
  } catch (const std::exception& e) {
    setError(error, "ERR_NATIVE", e.what());
  } catch (...) {
    setError(error, "ERR_NATIVE", "unknown exception in the CUDA plugin");
  }
  return 1;
}

void checkDevice(int device) {
  allocatorFor(device);  // throws for an ordinal that does not exist
  device::activate(device);
}

void readAttr(const DeepnodeCudaAttr& attr, AttrValue& value) {
  switch (attr.kind) {
    case DEEPNODE_CUDA_ATTR_NUMBER:
      value.kind = AttrValue::Kind::Number;
      value.number = attr.number;
      break;
    case DEEPNODE_CUDA_ATTR_BOOL:
      value.kind = AttrValue::Kind::Bool;
      value.boolean = attr.number != 0;
      break;
    case DEEPNODE_CUDA_ATTR_STRING:
      value.kind = AttrValue::Kind::String;
      value.string = attr.string == nullptr ? "" : attr.string;
      break;
    case DEEPNODE_CUDA_ATTR_LIST:
      value.kind = AttrValue::Kind::List;
      if (attr.list != nullptr) value.list.assign(attr.list, attr.list + attr.listSize);
      break;
    default: throw KernelError("ERR_ARGUMENT", std::string("attribute '") + attr.name + "' has an unknown kind");
  }
}

// The C arguments into the op's cached KernelCall (call_cache.h), so a repeated op allocates nothing.
void fillCall(CallLease& lease, const DeepnodeCudaBuffer* buffers, int bufferCount, const DeepnodeCudaAttr* attrs,
              int attrCount) {
  KernelCall& call = lease.call();
  call.buffers.clear();
  for (int i = 0; i < bufferCount; ++i) {
    Buffer buffer;
    buffer.data = buffers[i].data;
    buffer.size = buffers[i].size;
    if (buffers[i].dtype < 0 || buffers[i].dtype > static_cast<int>(DType::Int8))
      throw KernelError("ERR_DTYPE", call.op + ": buffer " + std::to_string(i) + " has an unknown dtype");
    buffer.dtype = static_cast<DType>(buffers[i].dtype);
    call.buffers.push_back(buffer);
  }
  AttrWriter writer(lease);
  for (int i = 0; i < attrCount; ++i) {
    lease.name() = attrs[i].name;
    readAttr(attrs[i], writer.set(lease.name()));
  }
  writer.finish();
}

// This thread's cached calls and the op name being looked up.
struct RunCache {
  CallCache calls;
  std::string op;
};

RunCache& runCache() {
  static thread_local RunCache cache;
  return cache;
}

std::string kernelNameList() {
  std::string names;
  for (const auto& entry : kernelTable()) names += (names.empty() ? "" : ",") + entry.first;
  return names;
}

int apiAlloc(int device, size_t bytes, int fillByte, void** data, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    if (fillByte < -1 || fillByte > 255) throw KernelError("ERR_VALUE", "alloc: fillByte must be -1 or a byte");
    checkDevice(device);
    waits::Activity activity(waits::Doing::Allocate);
    *data = allocatorFor(device).allocate(bytes);
    if (fillByte >= 0) device::fill(device, *data, static_cast<unsigned char>(fillByte), bytes);
  });
}

int apiRelease(int device, void* data, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    checkDevice(device);
    allocatorFor(device).release(data);
  });
}

// A copy to the host waits for the device, so it reports what the deferred checks found.
int apiCopy(int device, void* dst, const void* src, size_t bytes, device::Copy kind, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    checkDevice(device);
    waits::Activity activity(kind == device::Copy::ToHost     ? waits::Doing::Read
                             : kind == device::Copy::ToDevice ? waits::Doing::Upload
                                                              : waits::Doing::Other);
    const uint64_t queued = checksQueued(device);
    device::copy(device, dst, src, bytes, kind);
    // An empty copy does not wait, so the checks' kernels may still be running.
    if (kind == device::Copy::ToHost && bytes != 0) reportCheckFailures(device, queued);
  });
}

int apiCopyToDevice(int device, void* dst, const void* src, size_t bytes, DeepnodeCudaError* error) {
  return apiCopy(device, dst, src, bytes, device::Copy::ToDevice, error);
}
int apiCopyToHost(int device, void* dst, const void* src, size_t bytes, DeepnodeCudaError* error) {
  return apiCopy(device, dst, src, bytes, device::Copy::ToHost, error);
}
int apiCopyOnDevice(int device, void* dst, const void* src, size_t bytes, DeepnodeCudaError* error) {
  return apiCopy(device, dst, src, bytes, device::Copy::OnDevice, error);
}

int apiSynchronize(int device, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    checkDevice(device);
    waits::Activity activity(waits::Doing::Synchronize);
    const uint64_t queued = checksQueued(device);
    device::synchronize(device);
    reportCheckFailures(device, queued);
  });
}

std::mutex& runMutex(int device) {
  static std::mutex mutexes[64];
  return mutexes[device % 64];
}

int apiRun(int device, const char* op, const DeepnodeCudaBuffer* buffers, int bufferCount,
           const DeepnodeCudaAttr* attrs, int attrCount, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    checkDevice(device);
    RunCache& cache = runCache();
    cache.op = op;
    CachedCall* entry = cache.calls.find(cache.op, kernelTable());
    if (entry == nullptr) throw KernelError("ERR_NOT_SUPPORTED", std::string("no cuda kernel named '") + op + "'");
    CallLease lease(*entry);
    fillCall(lease, buffers, bufferCount, attrs, attrCount);
    // One kernel at a time per device: the cuBLAS and cuDNN handles and the algorithm cache
    // are per device, and worker threads may run kernels concurrently.
    std::lock_guard<std::mutex> lock(runMutex(device));
    runningDevice = device;
    waits::Activity activity(waits::Doing::Op, lease.call().op.c_str());
    entry->fn(lease.call());
  });
}

int apiMemoryStats(int device, DeepnodeCudaMemoryStats* stats, DeepnodeCudaError* error) {
  return guarded(error, [&] { *stats = allocatorFor(device).stats(); });
}

int apiWaitStats(int device, DeepnodeCudaWaitStats* stats, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    checkDevice(device);
    *stats = waits::stats(device);
  });
}

// Launches by device; each run holds its device's lock, but reads come from any thread.
std::atomic<int64_t> launchCounts[DEEPNODE_CUDA_MAX_DEVICES];

int apiLaunchCount(int device, int64_t* launches, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    checkDevice(device);
    *launches = launchCounts[device].load();
  });
}

int apiEmptyCache(int device, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    checkDevice(device);
    allocatorFor(device).emptyCache();
  });
}

bool allowTf32 = false;

int apiSetOption(const char* name, double value, DeepnodeCudaError* error) {
  return guarded(error, [&] {
    std::string option = name == nullptr ? "" : name;
    if (option == "allow_tf32") {
      allowTf32 = value != 0;
    } else if (option == "sync_checks") {
      setSyncChecks(value != 0);
    } else if (option == "memory_limit") {
      if (!(value >= 0)) throw KernelError("ERR_VALUE", "memory_limit must be a non-negative number of bytes");
      CachingAllocator::setLimit(static_cast<size_t>(value));
    } else {
      throw KernelError("ERR_VALUE", "unknown CUDA plugin option '" + option +
                                         "' (expected allow_tf32, sync_checks or memory_limit)");
    }
  });
}

}  // namespace

int currentDevice() {
  return runningDevice;
}

void noteLaunch() {
  if (runningDevice >= 0 && runningDevice < DEEPNODE_CUDA_MAX_DEVICES) ++launchCounts[runningDevice];
}

void* currentStream() {
  return device::stream(runningDevice);
}

bool tf32Allowed() {
  return allowTf32;
}

std::string deviceName(int device) {
  return "cuda:" + std::to_string(device);
}

void failStatus(const char* library, const char* call, int status, const std::string& statusName) {
  throw KernelError("ERR_CUDA", std::string(call) + " failed on " + deviceName(runningDevice) + ": " + library +
                                    " status " + statusName + " (" + std::to_string(status) + ")");
}

void checkLaunch(const char* kernel) {
  device::checkLaunch(runningDevice, kernel);
}

Scratch::Scratch(size_t bytes) : bytes_(bytes), device_(runningDevice) {
  data_ = allocatorFor(device_).allocate(bytes);
}

Scratch::~Scratch() {
  try {
    allocatorFor(device_).release(data_);
  } catch (...) {  // a destructor must not throw; the block stays reserved
  }
}

void copyToHostNow(void* dst, const void* src, size_t bytes) {
  device::copy(runningDevice, dst, src, bytes, device::Copy::ToHost);
}

void fillZeroAsync(void* dst, size_t bytes) {
  device::fill(runningDevice, dst, 0, bytes);
}

}  // namespace deepnode::cuda

extern "C" __attribute__((visibility("default"))) const DeepnodeCudaApi* deepnode_cuda_api(void) {
  using namespace deepnode::cuda;
  static const std::string names = [] {
    try {
      return kernelNameList();
    } catch (...) {
      return std::string();
    }
  }();
  static const DeepnodeCudaApi api = {
      DEEPNODE_CUDA_ABI_VERSION,
      deepnode::cuda::device::flavour(),
      apiAlloc,
      apiRelease,
      apiCopyToDevice,
      apiCopyToHost,
      apiCopyOnDevice,
      apiSynchronize,
      apiRun,
      apiMemoryStats,
      apiEmptyCache,
      apiWaitStats,
      apiLaunchCount,
      apiSetOption,
      names.c_str(),
  };
  return &api;
}
