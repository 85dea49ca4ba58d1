// Argument checks that the cpu kernels and the CUDA kernels share, so that both backends
// reject the same calls with the same codes and messages: finite numbers, shape
// attributes, broadcasting and matching dtypes, and the raw-bits element type of a copy.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "../kernel.h"

namespace deepnode::args {

// A number attribute that must be finite (ERR_VALUE otherwise).
inline double finiteNumber(const KernelCall& call, const char* name) {
  double v = call.number(name);
  if (!std::isfinite(v)) call.fail("ERR_VALUE", std::string(name) + " must be finite, got " + numberText(v));
  return v;
}

// Reads a shape attribute whose element count fits in int64 (numel() would wrap).
inline Shape checkedShape(const KernelCall& call, const char* name) {
  Shape shape = call.shape(name);
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n))
      call.fail("ERR_SHAPE", std::string(name) + " " + shapeString(shape) + " is too large");
  }
  return shape;
}

// Fails with ERR_SHAPE unless `in` broadcasts to `out` (right-aligned, each dim equal or 1).
inline void checkBroadcast(const KernelCall& call, const Shape& out, const Shape& in, const char* role) {
  bool ok = in.size() <= out.size();
  for (size_t i = 0; ok && i < in.size(); ++i) {
    int64_t d = in[in.size() - 1 - i];
    ok = d == 1 || d == out[out.size() - 1 - i];
  }
  if (!ok) {
    call.fail("ERR_SHAPE",
              std::string("cannot broadcast ") + role + " of shape " + shapeString(in) + " to " + shapeString(out));
  }
}

inline void checkSameDType(const KernelCall& call, const Buffer& x, const Buffer& y, const char* xRole,
                           const char* yRole) {
  if (x.dtype != y.dtype) {
    call.fail("ERR_DTYPE", std::string(xRole) + " and " + yRole + " must have the same dtype, got " +
                               dtypeName(x.dtype) + " and " + dtypeName(y.dtype));
  }
}

// Calls fn(T()) with the unsigned type of an element of `size` bytes: copies (expand,
// where, permute, slice) move any dtype as raw bits.
template <typename Fn>
void bySize(size_t size, Fn&& fn) {
  switch (size) {
    case 1: return fn(uint8_t());
    case 4: return fn(uint32_t());
    default: return fn(uint64_t());
  }
}

// Calls fn(T()) with the C++ type of `dtype`'s elements.
template <typename Fn>
void byDType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float());
    case DType::Float64: return fn(double());
    case DType::Int32: return fn(int32_t());
    case DType::UInt8: return fn(uint8_t());
    case DType::Int8: return fn(int8_t());
  }
}

// cast's buffers [out, x], of one size.
inline void checkCastArgs(const KernelCall& call) {
  call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  call.expectSize(0, "out", x.size);
}

}  // namespace deepnode::args
