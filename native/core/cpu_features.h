// Run-time CPU feature detection for choosing SIMD kernels.
#pragma once

#include <string>
#include <vector>

#ifndef DEEPNODE_VERSION_STRING
#define DEEPNODE_VERSION_STRING "0.1.0"
#endif

namespace deepnode {

enum class SimdLevel { Generic, Avx2, Avx512 };

// The widest instruction set that this CPU supports and this build compiled in.
// DEEPNODE_SIMD=generic|avx2|avx512 lowers it (never raises it past the CPU's).
SimdLevel simdLevel();
std::vector<std::string> compiledSimd();
std::vector<std::string> detectedCpuFeatures();

// Name of the GEMM micro-kernel in use (defined in cpu/gemm.cc).
std::string gemmKernelName();

}  // namespace deepnode
