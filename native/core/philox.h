// Philox4x32-10, the counter-based generator behind every random op. It mirrors
// lib/random.ts number for number: element e of an op keyed (seed, offset) is lane
// (offset + e) % 4 of the block philox(counter = [b lo32, b hi32, 0, 0], key = [seed lo32,
// seed hi32]) with b = (offset + e) / 4. Uniforms and dropout masks are bit-identical to
// the TypeScript; normals agree to the rounding of the platform's log, sin and cos. The
// generator and the per-block transforms are DEEPNODE_HD, so the CUDA kernels use them too.
#pragma once

#include <math.h>

#include <cstdint>

#include "hd.h"

namespace deepnode::philox {

constexpr uint32_t kM0 = 0xd2511f53u;
constexpr uint32_t kM1 = 0xcd9e8d57u;
constexpr uint32_t kW0 = 0x9e3779b9u;
constexpr uint32_t kW1 = 0xbb67ae85u;
constexpr double kInv2Pow24 = 1.0 / 16777216.0;
constexpr double kTwoPi = 2.0 * 3.141592653589793;  // 2 * Math.PI: doubling is exact

struct Block {
  uint32_t x[4];
};

// The ten rounds on one 64-bit block index; the key schedule bumps after every round.
DEEPNODE_HD inline Block philox4x32(uint64_t block, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return Block{{c0, c1, c2, c3}};
}

// A uniform in [0, 1) with 24 random bits: exact in float and in double.
DEEPNODE_HD inline double uniformOf(uint32_t bits) {
  return static_cast<double>(bits >> 8) * kInv2Pow24;
}

// Box-Muller on the block's pairs (x0, x1) and (x2, x3), in double as lib/random.ts does.
DEEPNODE_HD inline void normalsOf(const Block& block, double out[4]) {
  for (int pair = 0; pair < 4; pair += 2) {
    double u0 = static_cast<double>((block.x[pair] >> 8) + 1) * kInv2Pow24;
    double u1 = static_cast<double>((block.x[pair + 1] >> 8) + 1) * kInv2Pow24;
    double r = ::sqrt(-2.0 * ::log(u0));
    double t = kTwoPi * u1;
    out[pair] = r * ::cos(t);
    out[pair + 1] = r * ::sin(t);
  }
}

// The key of one op as the kernels receive it: seed split in 32-bit halves, and the offset.
struct Key {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// Calls visit(e, bits) for e in [begin, end) with the raw 32-bit lane of element e.
// Blocks are generated once per four elements, so the hot loop stays cheap.
template <typename Visit>
inline void forEachBits(const Key& key, int64_t begin, int64_t end, Visit&& visit) {
  int64_t e = begin;
  while (e < end) {
    uint64_t g = key.offset + static_cast<uint64_t>(e);
    Block block = philox4x32(g / 4, key.seed);
    for (uint32_t lane = static_cast<uint32_t>(g % 4); lane < 4 && e < end; ++lane, ++e) visit(e, block.x[lane]);
  }
}

// Calls visit(e, u) with the uniform of element e, as forEachUniform in lib/random.ts.
template <typename Visit>
inline void forEachUniform(const Key& key, int64_t begin, int64_t end, Visit&& visit) {
  forEachBits(key, begin, end, [&](int64_t e, uint32_t bits) { visit(e, uniformOf(bits)); });
}

// Calls visit(e, z) with the standard normal of element e, as forEachNormal in lib/random.ts.
template <typename Visit>
inline void forEachNormal(const Key& key, int64_t begin, int64_t end, Visit&& visit) {
  int64_t e = begin;
  while (e < end) {
    uint64_t g = key.offset + static_cast<uint64_t>(e);
    double normals[4];
    normalsOf(philox4x32(g / 4, key.seed), normals);
    for (uint32_t lane = static_cast<uint32_t>(g % 4); lane < 4 && e < end; ++lane, ++e) visit(e, normals[lane]);
  }
}

}  // namespace deepnode::philox
