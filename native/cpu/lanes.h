// Sums of float runs accumulated in double, in independent lanes held in registers.
// Written with GCC's vector types because GCC turned two `double s[16], sx[16]` lane arrays
// updated in one loop into scalar adds: layer norm's row sums ran at 2 cycles an element.
// Lane l of DoubleLanes<N> sums the terms at l, l + N, l + 2N, ... and total() adds the lanes
// to a start in lane order, so each sum is bitwise the one such an array gives. Every clone
// (AVX-512, AVX2, generic) lowers the 8-wide vectors to its own registers. A single array of
// 64 lanes, as reduce.cc's sums keep, vectorises well; this form measured no faster there.
#pragma once

#include <cstring>

namespace deepnode::cpu::lanes {

typedef float Float8 __attribute__((vector_size(32)));
typedef double Double8 __attribute__((vector_size(64)));

#define DEEPNODE_LANES_INLINE inline __attribute__((always_inline))

DEEPNODE_LANES_INLINE Float8 load8(const float* p) {
  Float8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

DEEPNODE_LANES_INLINE Double8 widen(Float8 v) {
  return __builtin_convertvector(v, Double8);
}

// The 8 floats at p, widened to double.
DEEPNODE_LANES_INLINE Double8 loadDouble8(const float* p) {
  return widen(load8(p));
}

DEEPNODE_LANES_INLINE Double8 load8(const double* p) {
  Double8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

DEEPNODE_LANES_INLINE void store8(float* p, Float8 v) {
  std::memcpy(p, &v, sizeof v);
}
DEEPNODE_LANES_INLINE void store8(double* p, Double8 v) {
  std::memcpy(p, &v, sizeof v);
}

template <int N>
struct DoubleLanes {
  static_assert(N % 8 == 0, "lanes come in vectors of 8");
  static constexpr int kVectors = N / 8;
  Double8 v[kVectors] = {};

  // Adds terms(k), the terms of lanes [8k, 8k + 8), for each vector k.
  template <typename Terms>
  DEEPNODE_LANES_INLINE void add(Terms&& terms) {
    for (int k = 0; k < kVectors; ++k) v[k] += terms(k);
  }

  DEEPNODE_LANES_INLINE double total(double start = 0.0) const {
    for (int k = 0; k < kVectors; ++k) {
      for (int l = 0; l < 8; ++l) start += v[k][l];
    }
    return start;
  }
};

#undef DEEPNODE_LANES_INLINE

}  // namespace deepnode::cpu::lanes
