// Our own declarations of the cuBLAS, cuBLASLt and cuDNN entry points the plugin uses,
// written from NVIDIA's public API references. The libraries are opened with dlopen at
// run time, so the plugin compiles where only nvcc and the CUDA runtime are installed
// (CI) and loads where the libraries are missing. nvlibs_check.cc, built only where the
// real headers exist, asserts that every declaration here matches them.
#pragma once

#include <library_types.h>  // libraryPropertyType, from the CUDA runtime's headers

namespace deepnode::cuda::nv {

// Status enums: each library's success value is 0.
enum class CublasStatus : int { Success = 0 };
enum class CudnnStatus : int { Success = 0 };

// Library version queries: each writes the major, minor or patch number to *value.
using CublasGetPropertyFn = CublasStatus (*)(libraryPropertyType type, int* value);
using CublasLtGetPropertyFn = CublasStatus (*)(libraryPropertyType type, int* value);
using CudnnGetPropertyFn = CudnnStatus (*)(libraryPropertyType type, int* value);

// The entry points, by the names the libraries export them under.
inline constexpr const char* kCublasGetProperty = "cublasGetProperty";
inline constexpr const char* kCublasLtGetProperty = "cublasLtGetProperty";
inline constexpr const char* kCudnnGetProperty = "cudnnGetProperty";

}  // namespace deepnode::cuda::nv
