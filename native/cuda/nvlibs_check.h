// What the checks of nvlibs.h against NVIDIA's headers share (nvlibs_check_cublas.cc,
// nvlibs_check_cudnn.cc): compile-time comparisons of our declarations with theirs.
#pragma once

#include <type_traits>

#include "nvlibs.h"

namespace deepnode::cuda::nv::check {

// Two types are call-compatible when they are the same, or both enums of the same size
// (our status enums stand for theirs), or pointers to compatible types.
template <typename Ours, typename Theirs>
constexpr bool compatible() {
  if constexpr (std::is_enum_v<Ours> && std::is_enum_v<Theirs>) {
    return sizeof(Ours) == sizeof(Theirs);
  } else if constexpr (std::is_class_v<Ours> && std::is_class_v<Theirs>) {
    return true;  // opaque handle structs (descriptors, contexts) behind pointers
  } else if constexpr (std::is_const_v<Ours> || std::is_const_v<Theirs>) {
    return std::is_const_v<Ours> == std::is_const_v<Theirs> &&
           compatible<std::remove_const_t<Ours>, std::remove_const_t<Theirs>>();
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

template <typename Ours, typename Theirs>
constexpr bool same(Ours ours, Theirs theirs) {
  return static_cast<int>(ours) == static_cast<int>(theirs);
}

}  // namespace deepnode::cuda::nv::check
