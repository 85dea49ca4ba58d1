// The random kernels' key and dropout probability, read and checked the same way by the
// cpu kernels (native/cpu/creation.cc) and the CUDA ones (native/cuda/kernels/random.cu).
#pragma once

#include <cstdint>
#include <string>

#include "../kernel.h"
#include "../philox.h"

namespace deepnode::args {

// Reads seedLo, seedHi and offset, each checked to be a non-negative integer in range.
inline philox::Key randomKey(const KernelCall& call) {
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

// dropout's buffers [out, mask, x] (float32, of x's size) and its key and probability p.
struct DropoutArgs {
  philox::Key key;
  double p;
  float scale;  // 1 / (1 - p) for a kept element; 0 when p == 1 keeps nothing
};

inline DropoutArgs readDropoutArgs(const KernelCall& call) {
  call.buffer(0, "out", DType::Float32);
  call.buffer(1, "mask", DType::Float32);
  const Buffer& x = call.buffer(2, "x", DType::Float32);
  call.expectSize(0, "out", x.size);
  call.expectSize(1, "mask", x.size);
  philox::Key key = randomKey(call);
  double p = call.number("p");
  if (!(p >= 0 && p <= 1)) call.fail("ERR_VALUE", "p must be in [0, 1], got " + numberText(p));
  return DropoutArgs{key, p, p < 1 ? static_cast<float>(1.0 / (1.0 - p)) : 0.0f};
}

}  // namespace deepnode::args
