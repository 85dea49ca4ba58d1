// Number conversions shared by the cpu kernels and the CUDA kernels (DEEPNODE_HD), so
// that a fill or a cast stores the same value on every backend.
#pragma once

#include <math.h>

#include <cstdint>

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

}  // namespace deepnode
