// Creation kernels: fill, dtype casts, and the random fills (uniform, normal, dropout).
// Random kernels are pure functions of (seed, offset, element index) through Philox, so
// each thread generates its own range and the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "../core/convert.h"
#include "../core/philox.h"
#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"
#include "random_bits.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 32 * 1024;
constexpr int64_t kRandomGrain = 8 * 1024;  // Philox costs ~10 multiplies per 4 numbers

// C-like truncation toward zero, saturated so that out-of-range values and NaN are defined.
int32_t truncToInt32(double x) {
  if (std::isnan(x)) return 0;
  if (x >= 2147483647.0) return std::numeric_limits<int32_t>::max();
  if (x <= -2147483648.0) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(x);
}

template <typename To, typename From>
struct Convert {
  static To apply(From x) { return static_cast<To>(x); }
};
// uint8 storage holds bools: any nonzero value becomes 1.
template <typename From>
struct Convert<uint8_t, From> {
  static uint8_t apply(From x) { return x != 0 ? 1 : 0; }
};
template <>
struct Convert<uint8_t, uint8_t> {
  static uint8_t apply(uint8_t x) { return x; }
};
template <>
struct Convert<int32_t, float> {
  static int32_t apply(float x) { return truncToInt32(x); }
};
template <>
struct Convert<int32_t, double> {
  static int32_t apply(double x) { return truncToInt32(x); }
};
// Float to int8 goes through int32 and wraps, as PyTorch does.
template <>
struct Convert<int8_t, float> {
  static int8_t apply(float x) { return static_cast<int8_t>(static_cast<uint8_t>(truncToInt32(x) & 0xff)); }
};
template <>
struct Convert<int8_t, double> {
  static int8_t apply(double x) { return static_cast<int8_t>(static_cast<uint8_t>(truncToInt32(x) & 0xff)); }
};
template <>
struct Convert<int8_t, int32_t> {
  static int8_t apply(int32_t x) { return static_cast<int8_t>(static_cast<uint8_t>(x & 0xff)); }
};

template <typename To, typename From>
void castLoop(To* out, const From* x, int64_t n) {
  parallelFor(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = Convert<To, From>::apply(x[i]);
  });
}

template <typename To>
void castFrom(const Buffer& out, const Buffer& x) {
  To* o = out.as<To>();
  switch (x.dtype) {
    case DType::Float32: return castLoop(o, x.as<float>(), x.size);
    case DType::Float64: return castLoop(o, x.as<double>(), x.size);
    case DType::Int32: return castLoop(o, x.as<int32_t>(), x.size);
    case DType::UInt8: return castLoop(o, x.as<uint8_t>(), x.size);
    case DType::Int8: return castLoop(o, x.as<int8_t>(), x.size);
  }
}

template <typename T>
void fillWith(const Buffer& out, T value) {
  T* o = out.as<T>();
  parallelFor(out.size, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = value;
  });
}

// Reads seedLo, seedHi and offset, each checked to be a non-negative integer in range.
philox::Key randomKey(const KernelCall& call) {
  int64_t lo = call.integer("seedLo"), hi = call.integer("seedHi"), offset = call.integer("offset");
  if (lo < 0 || lo > 0xffffffffLL || hi < 0 || hi > 0xffffffffLL) {
    call.fail("ERR_VALUE", "seed halves must be 32-bit unsigned integers, got seedLo=" + std::to_string(lo) +
                               " seedHi=" + std::to_string(hi));
  }
  if (offset < 0) call.fail("ERR_VALUE", "offset must be non-negative, got " + std::to_string(offset));
  philox::Key key;
  key.seed = (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo);
  key.offset = static_cast<uint64_t>(offset);
  return key;
}

double finiteNumber(const KernelCall& call, const char* name) {
  double v = call.number(name);
  if (!std::isfinite(v)) call.fail("ERR_VALUE", std::string(name) + " must be finite, got " + std::to_string(v));
  return v;
}

}  // namespace

void fill(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  double value = call.number("value");
  switch (out.dtype) {
    case DType::Float32: return fillWith(out, static_cast<float>(value));
    case DType::Float64: return fillWith(out, value);
    case DType::Int32: return fillWith(out, static_cast<int32_t>(static_cast<uint32_t>(jsWrapInteger(value))));
    case DType::UInt8: return fillWith(out, static_cast<uint8_t>(jsWrapInteger(value) & 0xff));
    case DType::Int8: return fillWith(out, static_cast<int8_t>(static_cast<uint8_t>(jsWrapInteger(value) & 0xff)));
  }
}

void cast(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  call.expectSize(0, "out", x.size);
  switch (out.dtype) {
    case DType::Float32: return castFrom<float>(out, x);
    case DType::Float64: return castFrom<double>(out, x);
    case DType::Int32: return castFrom<int32_t>(out, x);
    case DType::UInt8: return castFrom<uint8_t>(out, x);
    case DType::Int8: return castFrom<int8_t>(out, x);
  }
}

void randUniform(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Float32);
  philox::Key key = randomKey(call);
  double low = finiteNumber(call, "low"), high = finiteNumber(call, "high");
  float* o = out.as<float>();
  double range = high - low;
  parallelFor(out.size, kRandomGrain, [&](int64_t begin, int64_t end) {
    forEachRandomBits(key, begin, end, [&](int64_t e, uint32_t bits) {
      o[e] = static_cast<float>(low + range * philox::uniformOf(bits));
    });
  });
}

void randNormal(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Float32);
  philox::Key key = randomKey(call);
  double mean = finiteNumber(call, "mean"), std = finiteNumber(call, "std");
  float* o = out.as<float>();
  parallelFor(out.size, kRandomGrain, [&](int64_t begin, int64_t end) {
    philox::forEachNormal(key, begin, end, [&](int64_t e, double z) { o[e] = static_cast<float>(mean + std * z); });
  });
}

// mask = keep ? 1 / (1 - p) : 0 with keep = uniform >= p, and out = x * mask, as
// backend.ts states; p == 1 keeps nothing, so the mask is all zeros.
void dropout(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Float32);
  const Buffer& mask = call.buffer(1, "mask", DType::Float32);
  const Buffer& x = call.buffer(2, "x", DType::Float32);
  call.expectSize(0, "out", x.size);
  call.expectSize(1, "mask", x.size);
  philox::Key key = randomKey(call);
  double p = call.number("p");
  if (!(p >= 0 && p <= 1)) call.fail("ERR_VALUE", "dropout probability must be in [0, 1], got " + std::to_string(p));

  float scale = p < 1 ? static_cast<float>(1.0 / (1.0 - p)) : 0.0f;
  float* o = out.as<float>();
  float* m = mask.as<float>();
  const float* xs = x.as<float>();
  parallelFor(x.size, kRandomGrain, [&](int64_t begin, int64_t end) {
    forEachRandomBits(key, begin, end, [&](int64_t e, uint32_t bits) {
      float keep = philox::uniformOf(bits) >= p ? scale : 0.0f;
      m[e] = keep;
      o[e] = xs[e] * keep;
    });
  });
}

}  // namespace deepnode::cpu
