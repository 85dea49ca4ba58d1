// What the CUDA plugin finds on this machine: the driver, the GPUs, and cuBLAS,
// cuBLASLt and cuDNN, each opened with dlopen from the folders the addon passes and then
// from the system's library path. Every failure is written into the report with the
// reason, so `deepnode info` and the DeviceError can say exactly what is missing.
#include <cuda_runtime_api.h>
#include <dirent.h>
#include <dlfcn.h>

#include <cstdio>
#include <string>
#include <vector>

#include "nvlibs.h"
#include "nvlibs_loader.h"
#include "plugin_api.h"

namespace deepnode::cuda {
namespace {

template <size_t N>
void copyString(char (&dst)[N], const std::string& src) {
  std::snprintf(dst, N, "%s", src.c_str());
}

std::string lastDlError() {
  const char* message = dlerror();
  return message == nullptr ? "unknown dlopen error" : message;
}

std::string runtimeError(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

// Order matters: cuBLAS needs cuBLASLt, and a library that is already open satisfies
// that dependency even when its folder is not on the system's path.
struct LibrarySpec {
  const char* name;
  const char* soname;
  const char* propertySymbol;
};
constexpr LibrarySpec kLibraries[DEEPNODE_CUDA_MAX_LIBRARIES] = {
    {"cublasLt", "libcublasLt.so.13", nv::kCublasLtGetProperty},
    {"cublas", "libcublas.so.13", nv::kCublasGetProperty},
    {"cudnn", "libcudnn.so.9", nv::kCudnnGetProperty},
};

// Opens `soname` from the first folder that has it, else from the system's path. The
// handle is never closed: the CUDA libraries stay loaded for the life of the process.
void* openLibrary(const LibrarySpec& spec, const std::vector<std::string>& dirs, std::string& path,
                  std::string& tried) {
  std::vector<std::string> candidates;
  for (const std::string& dir : dirs) candidates.push_back(dir + "/" + spec.soname);
  candidates.push_back(spec.soname);
  for (const std::string& candidate : candidates) {
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle != nullptr) {
      path = candidate;
      return handle;
    }
    tried += (tried.empty() ? "" : "; ") + lastDlError();
  }
  return nullptr;
}

// cuDNN 9 opens its parts (libcudnn_graph, _ops, _cnn, the engines...) by name when it needs
// them. Found in a folder off the system's path (a Python wheel's), those names would not
// resolve, or would resolve to another cuDNN's copies; so every part in the dispatcher's
// folder is opened first, globally, and cuDNN's own dlopen then gets these. A part that
// fails to open (one needing another not yet open) is tried again while a pass opens
// something; one that never opens is left to cuDNN, which names it in its status at first use.
void openCudnnParts(const std::string& dispatcherPath) {
  const size_t slash = dispatcherPath.rfind('/');
  if (slash == std::string::npos) return;  // from the system's path: its parts are there too
  const std::string dir = dispatcherPath.substr(0, slash);
  std::vector<std::string> parts;
  if (DIR* folder = opendir(dir.c_str())) {
    while (const dirent* entry = readdir(folder)) {
      const std::string name = entry->d_name;
      const std::string suffix = ".so.9";
      if (name.rfind("libcudnn_", 0) == 0 && name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        parts.push_back(dir + "/" + name);
      }
    }
    closedir(folder);
  }
  for (size_t before = parts.size() + 1; !parts.empty() && parts.size() < before;) {
    before = parts.size();
    std::vector<std::string> failed;
    for (const std::string& part : parts) {
      if (dlopen(part.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) failed.push_back(part);
    }
    parts.swap(failed);
  }
}

// "major.minor.patch" through the library's GetProperty entry point (the same
// signature in all three libraries, with 0 for success).
std::string libraryVersion(void* handle, const char* symbol) {
  auto getProperty = reinterpret_cast<nv::CublasGetPropertyFn>(dlsym(handle, symbol));
  if (getProperty == nullptr) return "";
  int parts[3] = {0, 0, 0};
  const libraryPropertyType types[3] = {MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL};
  for (int i = 0; i < 3; ++i) {
    if (getProperty(types[i], &parts[i]) != nv::CublasStatus::Success) return "";
  }
  return std::to_string(parts[0]) + "." + std::to_string(parts[1]) + "." + std::to_string(parts[2]);
}

// Hands cuBLAS's and cuDNN's handles (or why there is none) to the loader, which resolves
// their entry points on first use.
void handOver(const LibrarySpec& spec, void* handle, const std::string& error) {
  const std::string name = spec.name;
  if (name == "cublas") nv::rememberLibrary(nv::Library::Cublas, handle, error);
  if (name == "cudnn") nv::rememberLibrary(nv::Library::Cudnn, handle, error);
}

void probeLibraries(const std::vector<std::string>& dirs, DeepnodeCudaReport& report) {
  report.libraryCount = DEEPNODE_CUDA_MAX_LIBRARIES;
  for (int i = 0; i < DEEPNODE_CUDA_MAX_LIBRARIES; ++i) {
    const LibrarySpec& spec = kLibraries[i];
    DeepnodeCudaLibrary& library = report.libraries[i];
    copyString(library.name, spec.name);
    std::string path, tried;
    void* handle = openLibrary(spec, dirs, path, tried);
    handOver(spec, handle, handle == nullptr ? spec.soname + std::string(" not found: ") + tried : "");
    if (handle == nullptr) {
      copyString(library.error, spec.soname + std::string(" not found: ") + tried);
      continue;
    }
    copyString(library.path, path);
    copyString(library.version, libraryVersion(handle, spec.propertySymbol));
    if (std::string(spec.name) == "cudnn") openCudnnParts(path);
  }
}

// The driver and the devices. libcuda is opened first only to say clearly that no
// driver is installed; the statically linked runtime opens it again by itself.
void probeDevices(DeepnodeCudaReport& report) {
  cudaRuntimeGetVersion(&report.runtimeVersion);
  if (dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) == nullptr) {
    copyString(report.error, "no NVIDIA driver: " + lastDlError());
    return;
  }
  cudaDriverGetVersion(&report.driverVersion);
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    copyString(report.error, "cudaGetDeviceCount failed: " + runtimeError(status));
    return;
  }
  if (count == 0) {
    copyString(report.error, "the NVIDIA driver sees no GPU");
    return;
  }
  report.deviceCount = count < DEEPNODE_CUDA_MAX_DEVICES ? count : DEEPNODE_CUDA_MAX_DEVICES;
  for (int i = 0; i < report.deviceCount; ++i) {
    cudaDeviceProp properties{};
    status = cudaGetDeviceProperties(&properties, i);
    if (status != cudaSuccess) {
      copyString(report.error, "cudaGetDeviceProperties(" + std::to_string(i) + ") failed: " + runtimeError(status));
      report.deviceCount = i;
      return;
    }
    DeepnodeCudaDevice& device = report.devices[i];
    copyString(device.name, properties.name);
    device.major = properties.major;
    device.minor = properties.minor;
    device.totalMemory = properties.totalGlobalMem;
  }
}

}  // namespace
}  // namespace deepnode::cuda

extern "C" __attribute__((visibility("default"))) int deepnode_cuda_probe(const char* const* libraryDirs, int dirCount,
                                                                          DeepnodeCudaReport* report) {
  using namespace deepnode::cuda;
  if (report == nullptr) return 0;
  *report = DeepnodeCudaReport{};
  report->abiVersion = DEEPNODE_CUDA_ABI_VERSION;
  try {
    std::vector<std::string> dirs;
    for (int i = 0; i < dirCount && libraryDirs != nullptr; ++i) {
      if (libraryDirs[i] != nullptr && libraryDirs[i][0] != '\0') dirs.emplace_back(libraryDirs[i]);
    }
    probeDevices(*report);
    probeLibraries(dirs, *report);
  } catch (const std::exception& e) {
    copyString(report->error, std::string("the CUDA probe failed: ") + e.what());
  } catch (...) {
    copyString(report->error, "the CUDA probe failed with an unknown exception");
  }
  return 0;
}
