// The activations of the element-wise CUDA kernels in double (DEEPNODE_HD, so the host
// emulation runs the same code): the formulas of native/cpu/vec_erf.h and vec_math.h,
// evaluated in double and rounded once by the caller's store, as the reference backend does.
#pragma once

#include <math.h>

#include "../../core/hd.h"

namespace deepnode::cuda::math {

constexpr double kSqrtHalf = 0.70710678118654752;      // 1 / sqrt(2)
constexpr double kInvSqrtTwoPi = 0.39894228040143268;  // 1 / sqrt(2 pi)
constexpr double kSqrtTwoOverPi = 0.79788456080286536;
constexpr double kGeluCubic = 0.044715;

// 1 / (1 + e^-x): 0 rather than NaN where e^-x overflows.
DEEPNODE_HD inline double sigmoid(double x) {
  return 1.0 / (1.0 + ::exp(-x));
}

// min(max(x, low), high): high wins when low > high, as in PyTorch; NaN stays NaN.
DEEPNODE_HD inline double clamp(double x, double low, double high) {
  double lifted = x < low ? low : x;
  return lifted > high ? high : lifted;
}

// GELU and its derivative, exact (erf) form: x * Phi(x), Phi(x) + x * phi(x).
DEEPNODE_HD inline double gelu(double x) {
  return 0.5 * x * (1.0 + ::erf(x * kSqrtHalf));
}
DEEPNODE_HD inline double geluGrad(double x) {
  double cdf = 0.5 * (1.0 + ::erf(x * kSqrtHalf));
  return cdf + x * kInvSqrtTwoPi * ::exp(-0.5 * x * x);
}

// The tanh form: 0.5 x (1 + tanh(k (x + c x^3))) with k = sqrt(2 / pi), c = 0.044715.
DEEPNODE_HD inline double geluTanh(double x) {
  double inner = kSqrtTwoOverPi * (x + kGeluCubic * x * x * x);
  return 0.5 * x * (1.0 + ::tanh(inner));
}
DEEPNODE_HD inline double geluTanhGrad(double x) {
  double inner = kSqrtTwoOverPi * (x + kGeluCubic * x * x * x);
  double t = ::tanh(inner);
  double dInner = kSqrtTwoOverPi * (1.0 + 3.0 * kGeluCubic * x * x);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dInner;
}

// SiLU's derivative sigmoid(x) (1 + x (1 - sigmoid(x))).
DEEPNODE_HD inline double siluGrad(double x) {
  double s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}

}  // namespace deepnode::cuda::math
