// check_range: buffer 0 (x, float32 or float64) is read, not written; attributes low and
// high bound it, and op and name say whose argument it is. An element outside [low, high],
// or a NaN, is an ERR_VALUE naming op, as "<op>: all elements of <name> should be between
// <low> and <high>, but element <k> is not" (k the flat index of the first one).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "../hd.h"
#include "../kernel.h"

namespace deepnode::args::range {

struct RangeArgs {
  double low, high;
  std::string op, name;
};

inline RangeArgs readRange(const KernelCall& call) {
  const Buffer& x = call.buffer(0, "x");
  if (x.dtype != DType::Float32 && x.dtype != DType::Float64) {
    call.fail("ERR_DTYPE", "x must be float32 or float64");
  }
  RangeArgs a{call.number("low"), call.number("high"), call.string("op"), call.string("name")};
  if (!(a.low <= a.high)) call.fail("ERR_VALUE", "low must be at most high");
  return a;
}

// A bound as JavaScript writes it, for the numbers a loss bounds by (integers, and others to
// 9 significant digits).
inline std::string boundText(double bound) {
  char text[32];
  if (std::trunc(bound) == bound && std::fabs(bound) < 1e15) {
    std::snprintf(text, sizeof text, "%lld", static_cast<long long>(bound));
  } else {
    std::snprintf(text, sizeof text, "%.9g", bound);
  }
  return text;
}

[[noreturn]] inline void failRange(const RangeArgs& a, int64_t element) {
  throw KernelError("ERR_VALUE", a.op + ": all elements of " + a.name + " should be between " + boundText(a.low) +
                                     " and " + boundText(a.high) + ", but element " + std::to_string(element) +
                                     " is not");
}

template <typename T>
DEEPNODE_HD inline bool outside(T value, double low, double high) {
  return !(value >= low && value <= high);
}

}  // namespace deepnode::args::range
