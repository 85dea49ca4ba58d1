// Where a sliding window's taps fall inside its input: shared by conv2d's im2col/col2im and
// max pooling's vectorised interior.
#pragma once

#include <algorithm>
#include <cstdint>

namespace deepnode::cpu::window {

// Division rounding toward -infinity, and toward +infinity, for a positive divisor.
inline int64_t floorDiv(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
inline int64_t ceilDiv(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

// Outputs o in [0, count) whose input o * stride + offset lies inside [0, size): [begin, end).
inline void validRange(int64_t size, int64_t count, int64_t stride, int64_t offset, int64_t& begin, int64_t& end) {
  begin = std::clamp<int64_t>(ceilDiv(-offset, stride), 0, count);
  end = std::clamp<int64_t>(floorDiv(size - 1 - offset, stride) + 1, begin, count);
}

}  // namespace deepnode::cpu::window
