// Asserts, at compile time, that the declarations of nvlibs.h match NVIDIA's own headers.
// CMake builds this file only where cublas_v2.h, cublasLt.h and cudnn.h are found (the
// GPU machine); elsewhere nvlibs.h is all there is.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <type_traits>

#include "nvlibs.h"

namespace deepnode::cuda::nv {
namespace {

// Two types are call-compatible when they are the same, or both enums of the same size
// (our status enums stand for theirs), or pointers to compatible types.
template <typename Ours, typename Theirs>
constexpr bool compatible() {
  if constexpr (std::is_enum_v<Ours> && std::is_enum_v<Theirs>) {
    return sizeof(Ours) == sizeof(Theirs);
  } else if constexpr (std::is_pointer_v<Ours> && std::is_pointer_v<Theirs>) {
    return compatible<std::remove_pointer_t<Ours>, std::remove_pointer_t<Theirs>>();
  } else {
    return std::is_same_v<Ours, Theirs>;
  }
}

template <typename Ours, typename Theirs>
struct SameSignature : std::false_type {};

template <typename R1, typename... A1, typename R2, typename... A2>
struct SameSignature<R1 (*)(A1...), R2 (*)(A2...)>
    : std::bool_constant<sizeof...(A1) == sizeof...(A2) && compatible<R1, R2>() && (compatible<A1, A2>() && ...)> {};

static_assert(SameSignature<CublasGetPropertyFn, decltype(&cublasGetProperty)>::value);
static_assert(SameSignature<CublasLtGetPropertyFn, decltype(&cublasLtGetProperty)>::value);
static_assert(SameSignature<CudnnGetPropertyFn, decltype(&cudnnGetProperty)>::value);
static_assert(static_cast<int>(CUBLAS_STATUS_SUCCESS) == static_cast<int>(CublasStatus::Success));
static_assert(static_cast<int>(CUDNN_STATUS_SUCCESS) == static_cast<int>(CudnnStatus::Success));

}  // namespace
}  // namespace deepnode::cuda::nv
