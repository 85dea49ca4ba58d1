// Number conversions shared by the cpu kernels and the CUDA kernels (DEEPNODE_HD), so
// that a fill or a cast stores the same value on every backend.
#pragma once

#include <math.h>

#include <cstdint>
#include <type_traits>

#include "hd.h"

namespace deepnode {

// JavaScript's ToInt32 before the sign: truncate, then wrap modulo 2^32 into [0, 2^32);
// NaN and infinities give 0. A native fill stores what a typed array's fill would.
DEEPNODE_HD inline int64_t jsWrapInteger(double value) {
  if (!(value - value == 0)) return 0;  // NaN or infinite
  double m = fmod(trunc(value), 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int64_t>(m);
}

// The value a fill of `value` stores in a T: floats rounded, integers wrapped as a typed
// array's fill wraps them.
template <typename T>
inline T fillValue(double value) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(value);
  } else {
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(jsWrapInteger(value)));
  }
}

// C-like truncation toward zero, saturated so that out-of-range values and NaN are defined.
DEEPNODE_HD inline int32_t truncToInt32(double x) {
  if (x != x) return 0;
  if (x >= 2147483647.0) return 2147483647;
  if (x <= -2147483648.0) return -2147483647 - 1;
  return static_cast<int32_t>(x);
}

// A cast's conversion of one element to To: uint8 storage holds bools (any nonzero value
// becomes 1), floats go to int32 truncated and saturated, and to int8 through int32 with
// wrapping, as PyTorch does.
template <typename To>
struct Convert {
  template <typename From>
  DEEPNODE_HD static To apply(From x) {
    return static_cast<To>(x);
  }
};
template <>
struct Convert<uint8_t> {
  template <typename From>
  DEEPNODE_HD static uint8_t apply(From x) {
    return x != 0 ? 1 : 0;
  }
  DEEPNODE_HD static uint8_t apply(uint8_t x) { return x; }
};
template <>
struct Convert<int32_t> {
  template <typename From>
  DEEPNODE_HD static int32_t apply(From x) {
    return static_cast<int32_t>(x);
  }
  DEEPNODE_HD static int32_t apply(float x) { return truncToInt32(x); }
  DEEPNODE_HD static int32_t apply(double x) { return truncToInt32(x); }
};
template <>
struct Convert<int8_t> {
  template <typename From>
  DEEPNODE_HD static int8_t apply(From x) {
    return static_cast<int8_t>(x);
  }
  DEEPNODE_HD static int8_t apply(float x) { return wrapInt8(truncToInt32(x)); }
  DEEPNODE_HD static int8_t apply(double x) { return wrapInt8(truncToInt32(x)); }
  DEEPNODE_HD static int8_t apply(int32_t x) { return wrapInt8(x); }
  DEEPNODE_HD static int8_t wrapInt8(int32_t x) { return static_cast<int8_t>(static_cast<uint8_t>(x & 0xff)); }
};

// cast's two conversions where uint8 storage is a true uint8 (args/cast.h): a store into
// a Uint8Array (integers wrapped modulo 256; floats truncated first, NaN and infinities 0),
// and a true uint8 read as a bool.
struct WrapToUint8 {
  template <typename From>
  DEEPNODE_HD static uint8_t apply(From x) {
    if constexpr (std::is_floating_point_v<From>) {
      return static_cast<uint8_t>(jsWrapInteger(static_cast<double>(x)) & 0xff);
    } else {
      return static_cast<uint8_t>(x);
    }
  }
};
struct NonzeroToBool {
  DEEPNODE_HD static uint8_t apply(uint8_t x) { return x != 0 ? 1 : 0; }
};

}  // namespace deepnode
