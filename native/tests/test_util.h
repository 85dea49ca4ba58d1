// Helpers shared by the standalone kernel tests: building a KernelCall, checking values
// with a tolerance, and asserting the code of a KernelError. A failing check prints the
// worst element; the test's exit status counts the failures.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/kernel.h"

namespace deepnode::test {

inline int& failures() {
  static int count = 0;
  return count;
}

inline void check(bool ok, const std::string& what) {
  if (ok) return;
  ++failures();
  std::printf("FAIL %s\n", what.c_str());
}

inline AttrValue num(double v) {
  AttrValue a;
  a.kind = AttrValue::Kind::Number;
  a.number = v;
  return a;
}
inline AttrValue flag(bool v) {
  AttrValue a;
  a.kind = AttrValue::Kind::Bool;
  a.boolean = v;
  return a;
}
inline AttrValue str(const std::string& v) {
  AttrValue a;
  a.kind = AttrValue::Kind::String;
  a.string = v;
  return a;
}
template <typename T>
inline AttrValue list(const std::vector<T>& v) {
  AttrValue a;
  a.kind = AttrValue::Kind::List;
  for (T x : v) a.list.push_back(static_cast<double>(x));
  return a;
}

template <typename T>
DType dtypeOf();
template <>
inline DType dtypeOf<float>() {
  return DType::Float32;
}
template <>
inline DType dtypeOf<double>() {
  return DType::Float64;
}
template <>
inline DType dtypeOf<int32_t>() {
  return DType::Int32;
}
template <>
inline DType dtypeOf<uint8_t>() {
  return DType::UInt8;
}
template <>
inline DType dtypeOf<int8_t>() {
  return DType::Int8;
}

template <typename T>
Buffer buf(std::vector<T>& v) {
  Buffer b;
  b.data = v.empty() ? nullptr : v.data();
  b.size = static_cast<int64_t>(v.size());
  b.dtype = dtypeOf<T>();
  return b;
}
inline Buffer nullBuffer() {
  return Buffer{};
}

inline KernelCall makeCall(const std::string& op, std::vector<Buffer> buffers,
                           std::vector<std::pair<std::string, AttrValue>> attrs) {
  KernelCall call;
  call.op = op;
  call.buffers = std::move(buffers);
  for (auto& [name, value] : attrs) call.attrs[name] = value;
  return call;
}

// Runs fn on call; returns the KernelError code, or "" when it succeeded.
inline std::string codeOf(KernelFn fn, KernelCall call) {
  try {
    fn(call);
  } catch (const KernelError& e) {
    return e.code;
  }
  return "";
}

inline std::string messageOf(KernelFn fn, KernelCall call) {
  try {
    fn(call);
  } catch (const KernelError& e) {
    return e.what();
  }
  return "";
}

// Close when both NaN, equal infinities, or |a - b| <= atol + rtol * |b|.
inline bool close(double a, double b, double rtol, double atol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(a - b) <= atol + rtol * std::fabs(b);
}

template <typename A, typename B>
bool allClose(const std::vector<A>& got, const std::vector<B>& want, double rtol, double atol,
              const std::string& what) {
  if (got.size() != want.size()) {
    check(false, what + ": size " + std::to_string(got.size()) + " vs " + std::to_string(want.size()));
    return false;
  }
  size_t bad = got.size();
  int count = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!close(static_cast<double>(got[i]), static_cast<double>(want[i]), rtol, atol)) {
      if (bad == got.size()) bad = i;
      ++count;
    }
  }
  if (count == 0) return true;
  check(false, what + ": " + std::to_string(count) + " mismatches, first at " + std::to_string(bad) + ": got " +
                   std::to_string(static_cast<double>(got[bad])) + " want " +
                   std::to_string(static_cast<double>(want[bad])));
  return false;
}

inline std::mt19937& rng() {
  static std::mt19937 gen(1234);
  return gen;
}

inline std::vector<float> randomFloats(int64_t n, float lo = -3, float hi = 3) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng());
  return v;
}

inline std::vector<int32_t> randomInts(int64_t n, int lo, int hi) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = dist(rng());
  return v;
}

inline int randomInt(int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng());
}

// Row-major strides of shape, and the multi-index of flat position i.
inline std::vector<int64_t> unravel(const Shape& shape, int64_t i) {
  std::vector<int64_t> idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] == 0 ? 0 : i % shape[d];
    if (shape[d]) i /= shape[d];
  }
  return idx;
}

// Flat position in `in` (right-aligned, broadcast) of the out multi-index.
inline int64_t broadcastIndex(const Shape& in, const std::vector<int64_t>& outIdx) {
  int64_t flat = 0;
  size_t lead = outIdx.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d) flat = flat * in[d] + (in[d] == 1 ? 0 : outIdx[lead + d]);
  return flat;
}

inline int finish(const char* name) {
  if (failures() == 0)
    std::printf("%s: all checks passed\n", name);
  else
    std::printf("%s: %d checks FAILED\n", name, failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace deepnode::test
