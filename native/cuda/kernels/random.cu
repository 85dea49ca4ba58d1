// rand_uniform, rand_normal and dropout on CUDA: the same Philox numbers as the cpu
// kernels (native/core/philox.h). Element e of an op keyed (seed, offset) is lane
// (offset + e) % 4 of block (offset + e) / 4, so each thread generates one block and writes
// the up to four elements of [0, n) that it covers.
#include <cstdint>
#include <string>

#include "../../core/philox.h"
#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

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

// The blocks that elements [0, n) of `key` fall in: the first and how many.
struct BlockRange {
  uint64_t first;
  int64_t count;
};

BlockRange blocksOf(const philox::Key& key, int64_t n) {
  const uint64_t first = key.offset / 4, last = (key.offset + static_cast<uint64_t>(n) - 1) / 4;
  return {first, static_cast<int64_t>(last - first + 1)};
}

// Element index of lane `lane` of block `block`, or -1 when it is outside [0, n).
DEEPNODE_HD inline int64_t elementOf(const philox::Key& key, uint64_t block, int lane, int64_t n) {
  const uint64_t g = block * 4 + static_cast<uint64_t>(lane);
  if (g < key.offset || g - key.offset >= static_cast<uint64_t>(n)) return -1;
  return static_cast<int64_t>(g - key.offset);
}

// shift + scale * v rounded after each step, as the cpu and the reference compute it: nvcc
// would otherwise fuse it into one multiply-add, and uniforms must be bit-identical.
DEEPNODE_HD inline double scaleShift(double v, double scale, double shift) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(shift, __dmul_rn(scale, v));
#else
  return shift + scale * v;
#endif
}

void uniformRun(const philox::Key key, int64_t n, float* out, double low, double range) {
  const BlockRange blocks = blocksOf(key, n);
  forEach("rand_uniform", blocks.count, [=] DEEPNODE_HD(int64_t j) {
    const uint64_t block = blocks.first + static_cast<uint64_t>(j);
    const philox::Block bits = philox::philox4x32(block, key.seed);
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t e = elementOf(key, block, lane, n);
      if (e >= 0) out[e] = static_cast<float>(scaleShift(philox::uniformOf(bits.x[lane]), range, low));
    }
  });
}

void normalRun(const philox::Key key, int64_t n, float* out, double mean, double std) {
  const BlockRange blocks = blocksOf(key, n);
  forEach("rand_normal", blocks.count, [=] DEEPNODE_HD(int64_t j) {
    const uint64_t block = blocks.first + static_cast<uint64_t>(j);
    double normals[4];
    philox::normalsOf(philox::philox4x32(block, key.seed), normals);
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t e = elementOf(key, block, lane, n);
      if (e >= 0) out[e] = static_cast<float>(scaleShift(normals[lane], std, mean));
    }
  });
}

void dropoutRun(const philox::Key key, int64_t n, float* out, float* mask, const float* x, double p, float scale) {
  const BlockRange blocks = blocksOf(key, n);
  forEach("dropout", blocks.count, [=] DEEPNODE_HD(int64_t j) {
    const uint64_t block = blocks.first + static_cast<uint64_t>(j);
    const philox::Block bits = philox::philox4x32(block, key.seed);
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t e = elementOf(key, block, lane, n);
      if (e < 0) continue;
      const float keep = philox::uniformOf(bits.x[lane]) >= p ? scale : 0.0f;
      mask[e] = keep;
      out[e] = x[e] * keep;
    }
  });
}

void randUniform(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Float32);
  philox::Key key = randomKey(call);
  double low = finiteNumber(call, "low"), high = finiteNumber(call, "high");
  if (out.size == 0) return;
  uniformRun(key, out.size, out.as<float>(), low, high - low);
}

void randNormal(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Float32);
  philox::Key key = randomKey(call);
  double mean = finiteNumber(call, "mean"), std = finiteNumber(call, "std");
  if (out.size == 0) return;
  normalRun(key, out.size, out.as<float>(), mean, std);
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
  if (x.size == 0) return;
  float scale = p < 1 ? static_cast<float>(1.0 / (1.0 - p)) : 0.0f;
  dropoutRun(key, x.size, out.as<float>(), mask.as<float>(), x.as<float>(), p, scale);
}

}  // namespace elementwise

void registerRandomKernels(KernelTable& table) {
  table["rand_uniform"] = elementwise::randUniform;
  table["rand_normal"] = elementwise::randNormal;
  table["dropout"] = elementwise::dropout;
}

}  // namespace deepnode::cuda
