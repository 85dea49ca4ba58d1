// exp and tanh for float written as branch-free arithmetic, so that loops calling them
// vectorise (glibc's expf and tanhf are scalar calls without -ffast-math, which made
// softmax and tanh 10x slower than memory). Accuracy: within 2 ulp of the correctly
// rounded result over the normal range (checked in native/tests/elementwise_test.cc).
// Results that would be subnormal are flushed to 0, as the worker threads' FTZ mode does.
#pragma once

#include <cstdint>
#include <cstring>

namespace deepnode::cpu::vec {

inline float bitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// exp(x) = 2^k * exp(r) with k = round(x / ln 2) and |r| <= ln 2 / 2; exp(r) by the
// Cephes polynomial. Overflow gives inf, underflow 0, NaN stays NaN.
inline float exp(float x) {
  const float hi = 88.72283935546875f, lo = -87.33654022216797f;
  float xc = x < hi ? x : hi;  // NaN takes the hi branch, keeping the integer math defined
  xc = xc > lo ? xc : lo;
  float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = xc - kf * 0.693359375f;
  r = r - kf * -2.12194440e-4f;
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  // 2^k for k in [-126, 128], split in two factors so k = 128 does not overflow the exponent.
  int32_t k = static_cast<int32_t>(kf);
  int32_t k1 = k >> 1;
  float result =
      p * bitsToFloat(static_cast<uint32_t>(k1 + 127) << 23) * bitsToFloat(static_cast<uint32_t>(k - k1 + 127) << 23);
  result = x > hi ? __builtin_inff() : result;
  result = x < lo ? 0.0f : result;
  return x != x ? x : result;
}

// tanh: an odd polynomial near 0 (where 1 - 2 / (e^2x + 1) would cancel), the exp form
// elsewhere; saturates to +-1 without NaN.
inline float tanh(float x) {
  float ax = x < 0 ? -x : x;
  float z = x * x;
  float small = -5.70498872745e-3f;
  small = small * z + 2.06390887954e-2f;
  small = small * z - 5.37397155531e-2f;
  small = small * z + 1.33314422036e-1f;
  small = small * z - 3.33332819422e-1f;
  small = small * z * x + x;
  float big = 1.0f - 2.0f / (exp(2.0f * ax) + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? small : big;
}

// 1 / (1 + e^-x): e^-x is inf for very negative x, which gives 0 rather than NaN.
inline float sigmoid(float x) {
  return 1.0f / (1.0f + exp(-x));
}

}  // namespace deepnode::cpu::vec
