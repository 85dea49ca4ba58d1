// Creation kernels: fill, dtype casts, and the random fills (uniform, normal, dropout).
// Random kernels are pure functions of (seed, offset, element index) through Philox, so
// each thread generates its own range and the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "../core/args/cast.h"
#include "../core/args/common.h"
#include "../core/args/random.h"
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

using namespace deepnode::args;

template <typename To, typename From>
void castLoop(To* out, const From* x, int64_t n) {
  parallelFor(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = Convert<To>::apply(x[i]);
  });
}

// out = Conversion::apply(x) per element, for the uint8 modes of args/cast.h.
template <typename Conversion, typename From>
void convertLoop(uint8_t* out, const From* x, int64_t n) {
  parallelFor(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = Conversion::apply(x[i]);
  });
}

template <typename T>
void fillWith(const Buffer& out, T value) {
  T* o = out.as<T>();
  parallelFor(out.size, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = value;
  });
}

}  // namespace

void fill(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const double value = call.number("value");
  byDType(out.dtype, [&](auto tag) { fillWith(out, fillValue<decltype(tag)>(value)); });
}

void cast(KernelCall& call) {
  checkCastArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];
  switch (readUint8Cast(call)) {
    case Uint8Cast::Wrap:
      return byDType(x.dtype,
                     [&](auto from) { convertLoop<WrapToUint8>(out.as<uint8_t>(), x.as<decltype(from)>(), x.size); });
    case Uint8Cast::Bool: return convertLoop<NonzeroToBool>(out.as<uint8_t>(), x.as<uint8_t>(), x.size);
    case Uint8Cast::Storage: break;
  }
  byDType(out.dtype, [&](auto to) {
    byDType(x.dtype, [&](auto from) { castLoop(out.as<decltype(to)>(), x.as<decltype(from)>(), x.size); });
  });
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
  const DropoutArgs args = readDropoutArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& mask = call.buffers[1];
  const Buffer& x = call.buffers[2];
  const philox::Key key = args.key;
  const double p = args.p;
  const float scale = args.scale;

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
