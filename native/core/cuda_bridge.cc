// See cuda_bridge.h. The plugin is opened once per process (its handle is never closed).
// A device buffer crosses into JavaScript as an External holding a CudaBlock; the
// finalizer returns a block that was never freed to the plugin's cache, so a tensor the
// GC collects does not leak device memory. Downloads that wait for the device run on a
// worker thread (cudaDownloadAsync), so the JS thread stays free.
#include "cuda_bridge.h"

#include <dlfcn.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../cuda/plugin_api.h"
#include "kernel.h"
#include "napi_read.h"

namespace deepnode {
namespace {

std::mutex pluginMutex;
const DeepnodeCudaApi* pluginApi = nullptr;

struct CudaBlock {
  int device = 0;
  void* data = nullptr;
  int64_t size = 0;  // elements
  DType dtype = DType::Float32;
  bool freed = false;

  size_t bytes() const { return static_cast<size_t>(size) * dtypeSize(dtype); }
};

Napi::Error makeError(const Napi::Env& env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

Napi::Error pluginError(const Napi::Env& env, const DeepnodeCudaError& error) {
  return makeError(env, error.code[0] == '\0' ? "ERR_NATIVE" : error.code, error.message);
}

const DeepnodeCudaApi& api(const Napi::Env& env) {
  std::lock_guard<std::mutex> lock(pluginMutex);
  if (pluginApi == nullptr) throw makeError(env, "ERR_STATE", "the CUDA plugin is not open (call cudaOpen first)");
  return *pluginApi;
}

void check(const Napi::Env& env, int status, const DeepnodeCudaError& error) {
  if (status != 0) throw pluginError(env, error);
}

int deviceArg(const Napi::Env& env, const Napi::Value& value, const char* fn) {
  if (!value.IsNumber()) throw makeError(env, "ERR_ARGUMENT", std::string(fn) + ": device must be a number");
  double device = value.As<Napi::Number>().DoubleValue();
  if (!(device >= 0 && device < 1024) || device != static_cast<int>(device))
    throw makeError(env, "ERR_ARGUMENT", std::string(fn) + ": device must be a non-negative integer");
  return static_cast<int>(device);
}

CudaBlock& blockArg(const Napi::Env& env, const Napi::Value& value, const char* fn) {
  if (!value.IsExternal()) throw makeError(env, "ERR_ARGUMENT", std::string(fn) + ": expected a cuda buffer handle");
  CudaBlock* block = value.As<Napi::External<CudaBlock>>().Data();
  if (block->freed) throw makeError(env, "ERR_STATE", std::string(fn) + ": the cuda buffer was already freed");
  return *block;
}

void releaseBlock(CudaBlock* block) {
  if (block->freed || pluginApi == nullptr) return;
  DeepnodeCudaError error{};
  pluginApi->release(block->device, block->data, &error);
  block->freed = true;
}

DType dtypeArg(const Napi::Env& env, const Napi::Value& value) {
  static const char* names[] = {"float32", "float64", "int32", "uint8", "int8"};
  std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  for (int i = 0; i < 5; ++i) {
    if (name == names[i]) return static_cast<DType>(i);
  }
  throw makeError(env, "ERR_DTYPE", "cudaAlloc: unknown storage dtype '" + name + "'");
}

// cudaOpen(pluginPath): { flavour, kernels }
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString())
    throw makeError(env, "ERR_ARGUMENT", "cudaOpen(pluginPath): expected a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::lock_guard<std::mutex> lock(pluginMutex);
  if (pluginApi == nullptr) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) throw makeError(env, "ERR_DEVICE", std::string("cannot open ") + path + ": " + dlerror());
    auto entry = reinterpret_cast<DeepnodeCudaApiFn>(dlsym(handle, DEEPNODE_CUDA_API_SYMBOL));
    if (entry == nullptr) throw makeError(env, "ERR_DEVICE", path + " has no " DEEPNODE_CUDA_API_SYMBOL " entry point");
    const DeepnodeCudaApi* opened = entry();
    if (opened == nullptr || opened->abiVersion != DEEPNODE_CUDA_ABI_VERSION)
      throw makeError(env, "ERR_DEVICE", path + " speaks another plugin interface version; rebuild both");
    pluginApi = opened;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("flavour", pluginApi->flavour);
  out.Set("kernels", pluginApi->kernelNames);
  return out;
}

// fillByte of cudaAlloc: 0 when absent, -1 (uninitialised) or a byte.
int fillByteArg(const Napi::Env& env, const Napi::CallbackInfo& info) {
  if (info.Length() < 4 || info[3].IsUndefined()) return 0;
  double value = info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : -2;
  if (!(value >= -1 && value <= 255) || value != static_cast<int>(value))
    throw makeError(env, "ERR_ARGUMENT", "cudaAlloc: fillByte must be -1 (uninitialised) or an integer in [0, 255]");
  return static_cast<int>(value);
}

// cudaAlloc(device, dtype, size, fillByte = 0): handle, every byte fillByte (-1: uninitialised)
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || info.Length() > 4 || !info[2].IsNumber())
    throw makeError(env, "ERR_ARGUMENT",
                    "cudaAlloc(device, dtype, size, fillByte?): expected a number, a string, a number and a number");
  const DeepnodeCudaApi& plugin = api(env);
  auto block = std::make_unique<CudaBlock>();
  block->device = deviceArg(env, info[0], "cudaAlloc");
  block->dtype = dtypeArg(env, info[1]);
  double size = info[2].As<Napi::Number>().DoubleValue();
  if (!(size >= 0 && size <= 9007199254740991.0) || size != static_cast<double>(static_cast<int64_t>(size)))
    throw makeError(env, "ERR_ARGUMENT", "cudaAlloc: size must be a non-negative integer");
  block->size = static_cast<int64_t>(size);
  int fillByte = fillByteArg(env, info);
  DeepnodeCudaError error{};
  check(env, plugin.alloc(block->device, block->bytes(), fillByte, &block->data, &error), error);
  return Napi::External<CudaBlock>::New(env, block.release(), [](Napi::Env, CudaBlock* dead) {
    releaseBlock(dead);
    delete dead;
  });
}

// cudaFree(handle): returns the memory to the plugin's cache; idempotent.
Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal())
    throw makeError(env, "ERR_ARGUMENT", "cudaFree(handle): expected a cuda buffer handle");
  CudaBlock* block = info[0].As<Napi::External<CudaBlock>>().Data();
  if (block->freed) return env.Undefined();
  DeepnodeCudaError error{};
  check(env, api(env).release(block->device, block->data, &error), error);
  block->freed = true;
  return env.Undefined();
}

// The typed array's bytes, checked to be exactly the block's.
std::pair<void*, size_t> hostBytes(const Napi::Env& env, const Napi::Value& value, const CudaBlock& block,
                                   const char* fn) {
  if (!value.IsTypedArray()) throw makeError(env, "ERR_ARGUMENT", std::string(fn) + ": expected a typed array");
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  size_t bytes = array.ByteLength();
  if (bytes != block.bytes()) {
    throw makeError(env, "ERR_SHAPE",
                    std::string(fn) + ": the typed array holds " + std::to_string(bytes) + " bytes, the cuda buffer " +
                        std::to_string(block.bytes()));
  }
  uint8_t* base = static_cast<uint8_t*>(array.ArrayBuffer().Data());
  return {base == nullptr ? nullptr : base + array.ByteOffset(), bytes};
}

// cudaUpload(handle, typedArray): host to device, in stream order; the array may be reused
// once it returns.
Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2) throw makeError(env, "ERR_ARGUMENT", "cudaUpload(handle, array): expected two arguments");
  CudaBlock& block = blockArg(env, info[0], "cudaUpload");
  auto [data, bytes] = hostBytes(env, info[1], block, "cudaUpload");
  DeepnodeCudaError error{};
  check(env, api(env).copyToDevice(block.device, block.data, data, bytes, &error), error);
  return env.Undefined();
}

// cudaDownload(handle, typedArray): device to host, after the work queued before it.
Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2) throw makeError(env, "ERR_ARGUMENT", "cudaDownload(handle, array): expected two arguments");
  CudaBlock& block = blockArg(env, info[0], "cudaDownload");
  auto [data, bytes] = hostBytes(env, info[1], block, "cudaDownload");
  DeepnodeCudaError error{};
  check(env, api(env).copyToHost(block.device, data, block.data, bytes, &error), error);
  return env.Undefined();
}

// The download of cudaDownloadAsync. The buffer is first copied, in stream order, to a
// private device block, on the JS thread; the worker thread then waits for that copy and
// brings the block to the host. So the values read are the buffer's at the time of the
// call, even if the tensor is freed and its memory reused before the worker runs. The
// handle and the typed array stay referenced until the promise settles.
class DownloadWorker : public Napi::AsyncWorker {
 public:
  DownloadWorker(Napi::Env env, const Napi::Value& array, int device, void* staging, void* dst, size_t bytes)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        device_(device),
        staging_(staging),
        dst_(dst),
        bytes_(bytes) {
    array_ = Napi::Persistent(array.As<Napi::Object>());
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    failed_ = pluginApi->copyToHost(device_, dst_, staging_, bytes_, &error_) != 0;
    DeepnodeCudaError ignored{};
    pluginApi->release(device_, staging_, &ignored);
  }

  void OnOK() override {
    if (failed_) {
      deferred_.Reject(pluginError(Env(), error_).Value());
    } else {
      deferred_.Resolve(Env().Undefined());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference array_;
  int device_;
  void* staging_;
  void* dst_;
  size_t bytes_;
  DeepnodeCudaError error_{};
  bool failed_ = false;
};

// cudaDownloadAsync(handle, typedArray): Promise<void>
Napi::Value DownloadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2)
    throw makeError(env, "ERR_ARGUMENT", "cudaDownloadAsync(handle, array): expected two arguments");
  CudaBlock& block = blockArg(env, info[0], "cudaDownloadAsync");
  const DeepnodeCudaApi& plugin = api(env);
  auto [data, bytes] = hostBytes(env, info[1], block, "cudaDownloadAsync");
  void* staging = nullptr;
  DeepnodeCudaError error{};
  check(env, plugin.alloc(block.device, bytes, -1, &staging, &error), error);  // the copy below fills it
  if (plugin.copyOnDevice(block.device, staging, block.data, bytes, &error) != 0) {
    DeepnodeCudaError ignored{};
    plugin.release(block.device, staging, &ignored);
    throw pluginError(env, error);
  }
  try {
    auto* worker = new DownloadWorker(env, info[1], block.device, staging, data, bytes);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  } catch (...) {  // no worker will run to give the block back
    DeepnodeCudaError ignored{};
    plugin.release(block.device, staging, &ignored);
    throw;
  }
}

// cudaRun's arguments as the plugin's C structs: names, strings and lists live in `names`
// and `values`, which only grow, so their capacity is reused from call to call.
struct RunArgs {
  std::string op;
  std::vector<DeepnodeCudaBuffer> buffers;
  std::vector<std::string> names;
  std::vector<AttrValue> values;
  std::vector<DeepnodeCudaAttr> attrs;
  bool busy = false;
};

// The arguments of the calling thread's cudaRun; a re-entrant call (a JS getter on the
// attributes calling cudaRun again) gets storage of its own.
class RunArgsLease {
 public:
  RunArgsLease() : reentrant_(shared().busy) {
    if (!reentrant_) shared().busy = true;
  }
  ~RunArgsLease() {
    if (!reentrant_) shared().busy = false;
  }
  RunArgsLease(const RunArgsLease&) = delete;
  RunArgsLease& operator=(const RunArgsLease&) = delete;

  RunArgs& args() { return reentrant_ ? own_ : shared(); }

 private:
  static RunArgs& shared() {
    static thread_local RunArgs args;
    return args;
  }
  bool reentrant_;
  RunArgs own_;
};

DeepnodeCudaAttr toCudaAttr(const std::string& name, const AttrValue& value) {
  DeepnodeCudaAttr attr{};
  attr.name = name.c_str();
  switch (value.kind) {
    case AttrValue::Kind::Number:
      attr.kind = DEEPNODE_CUDA_ATTR_NUMBER;
      attr.number = value.number;
      break;
    case AttrValue::Kind::Bool:
      attr.kind = DEEPNODE_CUDA_ATTR_BOOL;
      attr.number = value.boolean ? 1 : 0;
      break;
    case AttrValue::Kind::String:
      attr.kind = DEEPNODE_CUDA_ATTR_STRING;
      attr.string = value.string.c_str();
      break;
    case AttrValue::Kind::List:
      attr.kind = DEEPNODE_CUDA_ATTR_LIST;
      attr.list = value.list.data();
      attr.listSize = static_cast<int64_t>(value.list.size());
      break;
  }
  return attr;
}

void fillAttrs(const Napi::Env& env, napi_value object, RunArgs& out) {
  napi_value names = napi_read::propertyNames(env, object);
  const uint32_t count = napi_read::arrayLength(env, names);
  // Sized before the loop: the structs point into these strings and lists.
  if (out.names.size() < count) out.names.resize(count);
  if (out.values.size() < count) out.values.resize(count);
  out.attrs.clear();
  for (uint32_t i = 0; i < count; ++i) {
    napi_value key = napi_read::element(env, names, i);
    napi_value value = napi_read::property(env, object, key);
    napi_read::readString(env, key, out.names[i]);
    AttrValue& attr = out.values[i];
    attr.string.clear();
    attr.list.clear();
    napi_read::AttrRead read = napi_read::readAttr(env, value, attr);
    if (read != napi_read::AttrRead::Ok)
      throw makeError(env, "ERR_ARGUMENT", napi_read::attrReadMessage(read, out.names[i]));
    out.attrs.push_back(toCudaAttr(out.names[i], attr));
  }
}

// One buffer argument: a cuda buffer handle on `device`, or null/undefined for an absent one.
DeepnodeCudaBuffer toCudaBuffer(const Napi::Env& env, napi_value item, uint32_t index, int device,
                                const std::string& op) {
  napi_valuetype kind = napi_undefined;
  napi_read::check(env, napi_typeof(env, item, &kind));
  if (kind == napi_null || kind == napi_undefined) return {nullptr, 0, 0};
  CudaBlock& block = blockArg(env, Napi::Value(env, item), op.c_str());
  if (block.device != device) {
    throw makeError(env, "ERR_DEVICE",
                    op + ": buffer " + std::to_string(index) + " is on cuda:" + std::to_string(block.device) +
                        ", the kernel runs on cuda:" + std::to_string(device));
  }
  return {block.data, block.size, static_cast<int>(block.dtype)};
}

// cudaRun(device, op, handles, attrs): queues one kernel on the device's stream.
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4 || !info[1].IsString() || !info[2].IsArray() || !info[3].IsObject())
    throw makeError(env, "ERR_ARGUMENT",
                    "cudaRun(device, op, buffers, attrs): expected a number, a string, an array "
                    "and an object");
  const int device = deviceArg(env, info[0], "cudaRun");
  RunArgsLease lease;
  RunArgs& args = lease.args();
  napi_read::readString(env, info[1], args.op);
  napi_value handles = info[2];
  const uint32_t count = napi_read::arrayLength(env, handles);
  args.buffers.clear();
  for (uint32_t i = 0; i < count; ++i)
    args.buffers.push_back(toCudaBuffer(env, napi_read::element(env, handles, i), i, device, args.op));
  fillAttrs(env, info[3], args);
  DeepnodeCudaError error;  // 2 KiB: filled by the plugin only on failure, so not zeroed on every call
  error.code[0] = '\0';
  error.message[0] = '\0';
  int status = api(env).run(device, args.op.c_str(), args.buffers.data(), static_cast<int>(args.buffers.size()),
                            args.attrs.data(), static_cast<int>(args.attrs.size()), &error);
  check(env, status, error);
  return env.Undefined();
}

// An entry point whose only argument is the device: `name` in errors, `fn` the plugin's call.
Napi::Value DeviceCall(const Napi::CallbackInfo& info, const char* name,
                       int (*DeepnodeCudaApi::*fn)(int device, DeepnodeCudaError* error)) {
  Napi::Env env = info.Env();
  const int device = deviceArg(env, info[0], name);
  DeepnodeCudaError error{};
  check(env, (api(env).*fn)(device, &error), error);
  return env.Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return DeviceCall(info, "cudaSynchronize", &DeepnodeCudaApi::synchronize);
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int device = deviceArg(env, info[0], "cudaMemoryStats");
  DeepnodeCudaMemoryStats stats{};
  DeepnodeCudaError error{};
  check(env, api(env).memoryStats(device, &stats, &error), error);
  Napi::Object out = Napi::Object::New(env);
  out.Set("allocated", static_cast<double>(stats.allocated));
  out.Set("reserved", static_cast<double>(stats.reserved));
  out.Set("peakAllocated", static_cast<double>(stats.peakAllocated));
  out.Set("liveBuffers", static_cast<double>(stats.liveBuffers));
  out.Set("deviceAllocations", static_cast<double>(stats.deviceAllocations));
  out.Set("cacheHits", static_cast<double>(stats.cacheHits));
  out.Set("oomRetries", static_cast<double>(stats.oomRetries));
  return out;
}

Napi::Value WaitStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int device = deviceArg(env, info[0], "cudaWaitStats");
  DeepnodeCudaWaitStats stats{};
  DeepnodeCudaError error{};
  check(env, api(env).waitStats(device, &stats, &error), error);
  Napi::Object out = Napi::Object::New(env);
  out.Set("reads", static_cast<double>(stats.reads));
  out.Set("synchronizes", static_cast<double>(stats.synchronizes));
  out.Set("uploads", static_cast<double>(stats.uploads));
  out.Set("allocations", static_cast<double>(stats.allocations));
  out.Set("other", static_cast<double>(stats.other));
  Napi::Object ops = Napi::Object::New(env);
  for (int i = 0; i < stats.opCount && i < DEEPNODE_CUDA_MAX_WAIT_OPS; ++i) {
    ops.Set(std::string(stats.ops[i].op, strnlen(stats.ops[i].op, sizeof stats.ops[i].op)),
            static_cast<double>(stats.ops[i].count));
  }
  out.Set("ops", ops);
  out.Set("opsLeftOut", static_cast<double>(stats.opsLeftOut));
  return out;
}

Napi::Value Launches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int device = deviceArg(env, info[0], "cudaLaunches");
  int64_t launches = 0;
  DeepnodeCudaError error{};
  check(env, api(env).launchCount(device, &launches, &error), error);
  return Napi::Number::New(env, static_cast<double>(launches));
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return DeviceCall(info, "cudaEmptyCache", &DeepnodeCudaApi::emptyCache);
}

Napi::Value SetOption(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber())
    throw makeError(env, "ERR_ARGUMENT", "cudaSetOption(name, value): expected a string and a number");
  DeepnodeCudaError error{};
  std::string name = info[0].As<Napi::String>().Utf8Value();
  check(env, api(env).setOption(name.c_str(), info[1].As<Napi::Number>().DoubleValue(), &error), error);
  return env.Undefined();
}

}  // namespace

void registerCudaBridge(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaOpen", Napi::Function::New(env, Open, "cudaOpen"));
  exports.Set("cudaAlloc", Napi::Function::New(env, Alloc, "cudaAlloc"));
  exports.Set("cudaFree", Napi::Function::New(env, Free, "cudaFree"));
  exports.Set("cudaUpload", Napi::Function::New(env, Upload, "cudaUpload"));
  exports.Set("cudaDownload", Napi::Function::New(env, Download, "cudaDownload"));
  exports.Set("cudaDownloadAsync", Napi::Function::New(env, DownloadAsync, "cudaDownloadAsync"));
  exports.Set("cudaRun", Napi::Function::New(env, Run, "cudaRun"));
  exports.Set("cudaSynchronize", Napi::Function::New(env, Synchronize, "cudaSynchronize"));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, MemoryStats, "cudaMemoryStats"));
  exports.Set("cudaEmptyCache", Napi::Function::New(env, EmptyCache, "cudaEmptyCache"));
  exports.Set("cudaWaitStats", Napi::Function::New(env, WaitStats, "cudaWaitStats"));
  exports.Set("cudaLaunches", Napi::Function::New(env, Launches, "cudaLaunches"));
  exports.Set("cudaSetOption", Napi::Function::New(env, SetOption, "cudaSetOption"));
}

}  // namespace deepnode
