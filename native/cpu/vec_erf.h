// erf for float written as branch-free arithmetic (like vec_math.h), so that GELU's loops
// vectorise; glibc's erff is a scalar call. |x| < 1: x * P(x^2); 1 <= |x| < 4:
// 1 - exp(-x^2) * R(|x| - 2.5), where erfc(x) exp(x^2) is smooth; beyond, +-1 (erf(4)
// rounds to 1 in float). P and R were fitted by weighted least squares against double
// erf (scripts/fit_erf.py). Accuracy: relative error below 2e-7 for |x| < 1, absolute below
// 6e-8 beyond (the fit's report; native/tests/elementwise_test.cc checks against std::erf).
#pragma once

#include "vec_math.h"

namespace deepnode::cpu::vec {

inline float erf(float x) {
  float ax = x < 0 ? -x : x;
  float z = ax * ax;
  float p = 7.898139302e-05f;
  p = p * z - 8.024335257e-04f;
  p = p * z + 5.190051626e-03f;
  p = p * z - 2.685480751e-02f;
  p = p * z + 1.128361225e-01f;
  p = p * z - 3.761262894e-01f;
  p = p * z + 1.128379226e+00f;
  float small = ax * p;
  float u = ax - 2.5f;
  float r = -3.835866664e-07f;
  r = r * u + 1.658872520e-06f;
  r = r * u - 4.009317308e-06f;
  r = r * u + 1.442562552e-05f;
  r = r * u - 5.894272908e-05f;
  r = r * u + 2.128323104e-04f;
  r = r * u - 7.337129791e-04f;
  r = r * u + 2.466092585e-03f;
  r = r * u - 8.001474664e-03f;
  r = r * u + 2.493817359e-02f;
  r = r * u - 7.434736192e-02f;
  r = r * u + 2.108063549e-01f;
  float mid = 1.0f - exp(-z) * r;
  float y = ax < 1.0f ? small : mid;
  y = ax >= 4.0f ? 1.0f : y;
  y = x < 0 ? -y : y;
  return x != x ? x : y;
}

// GELU and its derivative, exact (erf) form: x * Phi(x), Phi(x) + x * phi(x).
inline float gelu(float x) {
  return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
}
inline float geluGrad(float x) {
  float cdf = 0.5f * (1.0f + erf(x * 0.70710678118654752f));
  return cdf + x * 0.39894228040143268f * exp(-0.5f * x * x);
}

// The tanh form: 0.5 x (1 + tanh(k (x + c x^3))) with k = sqrt(2 / pi), c = 0.044715.
inline float geluTanh(float x) {
  float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanh(inner));
}
inline float geluTanhGrad(float x) {
  float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
  float t = tanh(inner);
  float dInner = 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dInner;
}

// SiLU x * sigmoid(x) and its derivative sigmoid(x) (1 + x (1 - sigmoid(x))).
inline float silu(float x) {
  return x * sigmoid(x);
}
inline float siluGrad(float x) {
  float s = sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}

}  // namespace deepnode::cpu::vec
