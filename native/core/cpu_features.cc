// CPU feature detection: the compiler's cpuid builtins, and an environment override so
// every code path can be tested on a machine that has the widest one.
#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace deepnode {

namespace {

bool cpuHasAvx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpuHasAvx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

SimdLevel detect() {
  SimdLevel best = SimdLevel::Generic;
  if (cpuHasAvx2()) best = SimdLevel::Avx2;
  if (cpuHasAvx512()) best = SimdLevel::Avx512;
  if (const char* env = std::getenv("DEEPNODE_SIMD")) {
    SimdLevel wanted = best;
    if (std::strcmp(env, "generic") == 0) wanted = SimdLevel::Generic;
    if (std::strcmp(env, "avx2") == 0) wanted = SimdLevel::Avx2;
    if (std::strcmp(env, "avx512") == 0) wanted = SimdLevel::Avx512;
    if (static_cast<int>(wanted) < static_cast<int>(best)) best = wanted;
  }
  return best;
}

}  // namespace

SimdLevel simdLevel() {
  static const SimdLevel level = detect();
  return level;
}

std::vector<std::string> compiledSimd() {
#if defined(__x86_64__)
  return {"generic", "avx2", "avx512"};
#else
  return {"generic"};
#endif
}

std::vector<std::string> detectedCpuFeatures() {
  std::vector<std::string> out;
  if (cpuHasAvx2()) out.push_back("avx2");
  if (cpuHasAvx2()) out.push_back("fma");
  if (cpuHasAvx512()) out.push_back("avx512");
  return out;
}

}  // namespace deepnode
