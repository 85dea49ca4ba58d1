// Opens the CUDA plugin (deepnode_cuda.so) with dlopen and asks it what it finds. The
// addon never links against CUDA: a machine without it only sees an error string here.
#pragma once

#include <string>
#include <vector>

#include "../cuda/plugin_api.h"

namespace deepnode {

struct CudaProbeResult {
  std::string pluginError;  // why the plugin could not be used; empty when it answered
  DeepnodeCudaReport report{};
};

CudaProbeResult probeCudaPlugin(const std::string& pluginPath, const std::vector<std::string>& libraryDirs);

}  // namespace deepnode
