// Philox bits many blocks at a time, for the kernels that draw a number per element
// (random fills, dropout, fused attention's dropout): the blocks are independent, so the
// loop vectorises across them (about 1.5x the scalar philox::forEachBits).
#pragma once

#include <algorithm>
#include <cstdint>

#include "../core/philox.h"
#include "clones.h"

namespace deepnode::cpu {

// The raw Philox lanes of blocks [first, first + count).
// static: each including file compiles its own clones (target_clones and inline do not mix).
static DEEPNODE_CLONES void philoxBlocks(uint32_t* __restrict out, uint64_t first, int64_t count, uint64_t seed) {
  for (int64_t i = 0; i < count; ++i) {
    philox::Block b = philox::philox4x32(first + static_cast<uint64_t>(i), seed);
    for (int lane = 0; lane < 4; ++lane) out[4 * i + lane] = b.x[lane];
  }
}

// Calls visit(e, bits) for e in [begin, end) with the 32 random bits of element e, as
// philox::forEachBits does, generating a few hundred blocks at a time.
template <typename Visit>
void forEachRandomBits(const philox::Key& key, int64_t begin, int64_t end, Visit&& visit) {
  constexpr int64_t kBlocks = 256;
  uint32_t bits[4 * kBlocks];
  for (int64_t e = begin; e < end;) {
    uint64_t g = key.offset + static_cast<uint64_t>(e);
    int64_t lane0 = static_cast<int64_t>(g % 4);
    int64_t blocks = std::min<int64_t>(kBlocks, (lane0 + (end - e) + 3) / 4);
    philoxBlocks(bits, g / 4, blocks, key.seed);
    int64_t n = std::min<int64_t>(end - e, blocks * 4 - lane0);
    for (int64_t i = 0; i < n; ++i) visit(e + i, bits[lane0 + i]);
    e += n;
  }
}

}  // namespace deepnode::cpu
