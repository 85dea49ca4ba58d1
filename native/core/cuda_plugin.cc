// See cuda_plugin.h. The plugin's handle is never closed: once CUDA is initialised in a
// process it stays, and unloading the runtime under live allocations is unsafe.
#include "cuda_plugin.h"

#include <dlfcn.h>

#include <string>

namespace deepnode {

CudaProbeResult probeCudaPlugin(const std::string& pluginPath, const std::vector<std::string>& libraryDirs) {
  CudaProbeResult result;
  void* handle = dlopen(pluginPath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* reason = dlerror();
    result.pluginError = reason == nullptr ? "dlopen failed" : reason;
    return result;
  }
  auto probe = reinterpret_cast<DeepnodeCudaProbeFn>(dlsym(handle, DEEPNODE_CUDA_PROBE_SYMBOL));
  if (probe == nullptr) {
    result.pluginError = pluginPath + " has no " DEEPNODE_CUDA_PROBE_SYMBOL " entry point";
    return result;
  }
  std::vector<const char*> dirs;
  for (const std::string& dir : libraryDirs) dirs.push_back(dir.c_str());
  probe(dirs.data(), static_cast<int>(dirs.size()), &result.report);
  if (result.report.abiVersion != DEEPNODE_CUDA_ABI_VERSION) {
    result.pluginError = pluginPath + " speaks plugin interface version " + std::to_string(result.report.abiVersion) +
                         ", this addon version " + std::to_string(DEEPNODE_CUDA_ABI_VERSION) +
                         " (rebuild both with 'npm run build:native')";
  }
  return result;
}

}  // namespace deepnode
