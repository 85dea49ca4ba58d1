// The addon's entry points (the manifest mirrored by binding.d.ts): one generic kernel
// entry, `run`, plus a few for configuration and introspection. State lives in the
// environment's instance data, so the addon works in worker threads.
#include <napi.h>

#include <string>
#include <system_error>
#include <thread>

#include "core/call_cache.h"
#include "core/cpu_features.h"
#include "core/cuda_bridge.h"
#include "core/cuda_plugin.h"
#include "core/kernel.h"
#include "core/napi_read.h"
#include "core/threadpool.h"

namespace deepnode {
namespace {

Napi::Error makeError(const Napi::Env& env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

constexpr int kMaxThreads = 1024;  // as setNumThreads (lib/runtime.ts MAX_THREADS)

// DEEPNODE_NUM_THREADS when set (an integer from 1 to kMaxThreads, else an error that names
// it), otherwise the number of cores.
int defaultThreadCount(const Napi::Env& env) {
  if (const char* text = std::getenv("DEEPNODE_NUM_THREADS")) {
    const std::string value(text);
    const bool digits =
        !value.empty() && value.size() <= 4 && value.find_first_not_of("0123456789") == std::string::npos;
    const int n = digits ? std::stoi(value) : 0;
    if (n < 1 || n > kMaxThreads) {
      throw makeError(
          env, "ERR_VALUE",
          "DEEPNODE_NUM_THREADS must be an integer from 1 to " + std::to_string(kMaxThreads) + ", got '" + value + "'");
    }
    return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// A pool of n threads; a system that cannot start them is an error, not an abort.
std::unique_ptr<ThreadPool> startPool(const Napi::Env& env, int n, bool flushDenormal) {
  try {
    auto pool = std::make_unique<ThreadPool>(n);
    pool->setFlushDenormal(flushDenormal);
    return pool;
  } catch (const std::system_error& e) {
    throw makeError(env, "ERR_NATIVE", "cannot start " + std::to_string(n) + " cpu threads: " + e.what());
  }
}

struct EnvState {
  std::unique_ptr<ThreadPool> pool;
  bool flushDenormal = true;
  CallCache calls;  // run's argument storage per op, reused
  std::string op;   // run's op name

  ThreadPool& getPool(const Napi::Env& env) {
    if (!pool) pool = startPool(env, defaultThreadCount(env), flushDenormal);
    return *pool;
  }
};

EnvState& state(const Napi::Env& env) {
  return *env.GetInstanceData<EnvState>();
}

// One buffer argument: a typed array, or null/undefined for an absent optional one. One
// napi_get_typedarray_info gives the type, the length and the data (after the byte offset).
Buffer toBuffer(napi_env env, napi_value value, size_t index) {
  Buffer buffer;
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) != napi_ok) {
    napi_valuetype kind = napi_undefined;
    napi_read::check(env, napi_typeof(env, value, &kind));
    if (kind == napi_null || kind == napi_undefined) return buffer;
    throw makeError(env, "ERR_ARGUMENT", "buffer " + std::to_string(index) + " must be a typed array");
  }
  switch (type) {
    case napi_float32_array: buffer.dtype = DType::Float32; break;
    case napi_float64_array: buffer.dtype = DType::Float64; break;
    case napi_int32_array: buffer.dtype = DType::Int32; break;
    case napi_uint8_array: buffer.dtype = DType::UInt8; break;
    case napi_int8_array: buffer.dtype = DType::Int8; break;
    default:
      throw makeError(env, "ERR_DTYPE", "buffer " + std::to_string(index) + " has an unsupported typed array type");
  }
  buffer.size = static_cast<int64_t>(length);
  buffer.data = data;
  return buffer;
}

// The attributes object into call.attrs, rewriting the entries the last call of this op left.
void readAttrs(napi_env env, napi_value object, CallLease& lease) {
  napi_value names = napi_read::propertyNames(env, object);
  const uint32_t count = napi_read::arrayLength(env, names);
  AttrWriter writer(lease);
  std::string& name = lease.name();
  for (uint32_t i = 0; i < count; ++i) {
    napi_value key = napi_read::element(env, names, i);
    napi_value value = napi_read::property(env, object, key);
    napi_read::readString(env, key, name);
    napi_read::AttrRead read = napi_read::readAttr(env, value, writer.set(name));
    if (read != napi_read::AttrRead::Ok) throw makeError(env, "ERR_ARGUMENT", napi_read::attrReadMessage(read, name));
  }
  writer.finish();
}

void runKernel(const Napi::Env& env, EnvState& st, KernelFn fn, KernelCall& call) {
  ThreadPool& pool = st.getPool(env);
  setCurrentPool(&pool);
  try {
    DenormalGuard guard(st.flushDenormal);
    fn(call);
  } catch (const KernelError& e) {
    setCurrentPool(nullptr);
    throw makeError(env, e.code, e.what());
  } catch (const std::bad_alloc&) {
    setCurrentPool(nullptr);
    throw makeError(env, "ERR_OUT_OF_MEMORY", call.op + ": out of memory for scratch space");
  } catch (const std::exception& e) {
    setCurrentPool(nullptr);
    throw makeError(env, "ERR_NATIVE", call.op + ": " + e.what());
  }
  setCurrentPool(nullptr);
}

// run(op: string, buffers: (TypedArray | null)[], attrs: object): void
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsObject()) {
    throw makeError(env, "ERR_ARGUMENT", "run(op, buffers, attrs): expected a string, an array and an object");
  }

  EnvState& st = state(env);
  napi_read::readString(env, info[0], st.op);
  CachedCall* entry = st.calls.find(st.op, kernelTable());
  if (entry == nullptr) throw makeError(env, "ERR_NOT_SUPPORTED", "no native kernel named '" + st.op + "'");
  CallLease lease(*entry);
  KernelCall& call = lease.call();

  napi_value buffers = info[1];
  const uint32_t count = napi_read::arrayLength(env, buffers);
  call.buffers.clear();
  for (uint32_t i = 0; i < count; ++i) call.buffers.push_back(toBuffer(env, napi_read::element(env, buffers, i), i));

  readAttrs(env, info[2], lease);
  runKernel(env, st, entry->fn, call);
  return env.Undefined();
}

Napi::Value Kernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array names = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& entry : kernelTable()) names.Set(i++, Napi::String::New(env, entry.first));
  return names;
}

Napi::Array toStringArray(const Napi::Env& env, const std::vector<std::string>& items) {
  Napi::Array array = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) array.Set(static_cast<uint32_t>(i), items[i]);
  return array;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("version", DEEPNODE_VERSION_STRING);
  out.Set("compiler", "g++ " __VERSION__);
  out.Set("simd", toStringArray(env, compiledSimd()));
  out.Set("cpuFeatures", toStringArray(env, detectedCpuFeatures()));
  out.Set("gemmKernel", gemmKernelName());
  return out;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber())
    throw makeError(env, "ERR_ARGUMENT", "setNumThreads(n): n must be a number");
  double value = info[0].As<Napi::Number>().DoubleValue();
  if (!(value >= 1 && value <= kMaxThreads) || value != static_cast<int>(value))
    throw makeError(env, "ERR_VALUE",
                    "setNumThreads: n must be an integer in [1, " + std::to_string(kMaxThreads) + "]");
  EnvState& st = state(env);
  st.pool.reset();  // the old threads end before the new ones start
  st.pool = startPool(env, static_cast<int>(value), st.flushDenormal);
  return env.Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), state(info.Env()).getPool(info.Env()).size());
}

Napi::Value SetFlushDenormal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsBoolean())
    throw makeError(env, "ERR_ARGUMENT", "setFlushDenormal(on): on must be a boolean");
  EnvState& st = state(env);
  st.flushDenormal = info[0].As<Napi::Boolean>().Value();
  if (st.pool) st.pool->setFlushDenormal(st.flushDenormal);
  return env.Undefined();
}

Napi::Value GetFlushDenormal(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), state(info.Env()).flushDenormal);
}

Napi::Object cudaReportToObject(const Napi::Env& env, const CudaProbeResult& result) {
  const DeepnodeCudaReport& report = result.report;
  Napi::Object out = Napi::Object::New(env);
  out.Set("pluginError", result.pluginError);
  out.Set("runtimeVersion", report.runtimeVersion);
  out.Set("driverVersion", report.driverVersion);
  out.Set("error", std::string(report.error));
  Napi::Array devices = Napi::Array::New(env);
  for (int i = 0; i < report.deviceCount && i < DEEPNODE_CUDA_MAX_DEVICES; ++i) {
    Napi::Object device = Napi::Object::New(env);
    device.Set("name", std::string(report.devices[i].name));
    device.Set("computeCapability",
               std::to_string(report.devices[i].major) + "." + std::to_string(report.devices[i].minor));
    device.Set("totalMemory", static_cast<double>(report.devices[i].totalMemory));
    devices.Set(static_cast<uint32_t>(i), device);
  }
  out.Set("devices", devices);
  Napi::Array libraries = Napi::Array::New(env);
  for (int i = 0; i < report.libraryCount && i < DEEPNODE_CUDA_MAX_LIBRARIES; ++i) {
    Napi::Object library = Napi::Object::New(env);
    library.Set("name", std::string(report.libraries[i].name));
    library.Set("path", std::string(report.libraries[i].path));
    library.Set("version", std::string(report.libraries[i].version));
    library.Set("error", std::string(report.libraries[i].error));
    libraries.Set(static_cast<uint32_t>(i), library);
  }
  out.Set("libraries", libraries);
  return out;
}

// cudaProbe(pluginPath: string, libraryDirs: string[]): what the CUDA plugin finds.
Napi::Value CudaProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsArray())
    throw makeError(env, "ERR_ARGUMENT", "cudaProbe(pluginPath, libraryDirs): expected a string and an array");
  std::vector<std::string> dirs;
  Napi::Array array = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) throw makeError(env, "ERR_ARGUMENT", "cudaProbe: libraryDirs must hold strings");
    dirs.push_back(item.As<Napi::String>().Utf8Value());
  }
  return cudaReportToObject(env, probeCudaPlugin(info[0].As<Napi::String>().Utf8Value(), dirs));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new EnvState());  // freed by node-addon-api's default finalizer at env teardown
  exports.Set("run", Napi::Function::New(env, Run, "run"));
  exports.Set("kernels", Napi::Function::New(env, Kernels, "kernels"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("setFlushDenormal", Napi::Function::New(env, SetFlushDenormal, "setFlushDenormal"));
  exports.Set("getFlushDenormal", Napi::Function::New(env, GetFlushDenormal, "getFlushDenormal"));
  exports.Set("cudaProbe", Napi::Function::New(env, CudaProbe, "cudaProbe"));
  registerCudaBridge(env, exports);
  return exports;
}

}  // namespace
}  // namespace deepnode

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return deepnode::Init(env, exports);
}

NODE_API_MODULE(deepnode, InitAddon)
