// rand_uniform, rand_normal and dropout on CUDA: the same Philox numbers as the cpu
// kernels (native/core/philox.h). Element e of an op keyed (seed, offset) is lane
// (offset + e) % 4 of block (offset + e) / 4, so each thread generates one block and writes
// the up to four elements of [0, n) that it covers.
#include <cstdint>
#include <string>

#include "../../core/args/random.h"
#include "../../core/philox.h"
#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

using namespace args;

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
  const DropoutArgs args = readDropoutArgs(call);
  const Buffer& x = call.buffers[2];
  if (x.size == 0) return;
  dropoutRun(args.key, x.size, call.buffers[0].as<float>(), call.buffers[1].as<float>(), x.as<float>(), args.p,
             args.scale);
}

}  // namespace elementwise

void registerRandomKernels(KernelTable& table) {
  table["rand_uniform"] = elementwise::randUniform;
  table["rand_normal"] = elementwise::randNormal;
  table["dropout"] = elementwise::dropout;
}

}  // namespace deepnode::cuda
