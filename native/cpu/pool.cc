// max_pool2d forward and backward for NCHW float32, matching PyTorch: padding reads as -inf,
// the first maximum in row-major window order wins ties, a NaN counts as the maximum, and
// indices are flat h * w positions inside each (n, c) plane. Threads take whole planes.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "../core/args/pool.h"
#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"
#include "window.h"

namespace deepnode::cpu {

namespace {

using args::pool::describePool;
using args::pool::expectSizeOf;
using args::pool::PoolGeometry;
using args::pool::readPoolGeometry;

// Takes v when it beats the running maximum or is NaN (PyTorch's rule). Blended with masks,
// not branched: with random data a branch here mispredicts so often that it costs 5-10x, and
// GCC turns plain selects back into branches.
inline void pick(float v, int64_t index, float& best, int64_t& bestIndex) {
  bool take = v > best || v != v;
  uint32_t mask = 0u - static_cast<uint32_t>(take);
  uint32_t vBits, bestBits;
  std::memcpy(&vBits, &v, 4);
  std::memcpy(&bestBits, &best, 4);
  bestBits = (vBits & mask) | (bestBits & ~mask);
  std::memcpy(&best, &bestBits, 4);
  int64_t wide = static_cast<int64_t>(static_cast<int32_t>(mask));
  bestIndex = (index & wide) | (bestIndex & ~wide);
}

// Output ox of a row whose taps inside the plane are rows [y0, yEnd), any geometry. The first
// valid tap seeds the index so an all -inf window still points inside the input, as PyTorch's
// does.
void poolOne(const PoolGeometry& g, const float* x, int64_t y0, int64_t yEnd, int64_t ox, float& out, int32_t& index) {
  int64_t x0 = ox * g.strideW - g.padW;
  while (x0 < 0) x0 += g.dilationW;
  int64_t xEnd = std::min(ox * g.strideW - g.padW + (g.kW - 1) * g.dilationW + 1, g.w);
  float best = -std::numeric_limits<float>::infinity();
  int64_t bestIndex = y0 * g.w + x0;
  for (int64_t iy = y0; iy < yEnd; iy += g.dilationH) {
    for (int64_t ix = x0; ix < xEnd; ix += g.dilationW) pick(x[iy * g.w + ix], iy * g.w + ix, best, bestIndex);
  }
  out = best;
  index = static_cast<int32_t>(bestIndex);
}

// Outputs [oxBegin, oxEnd) of a row, every one with all its column taps inside the plane: the
// taps run as loops across outputs, which vectorise (strided loads, selects). Stride is the
// column step when known at compile time, else 0 and g.strideW gives it. Same rules as pick.
template <int Stride>
DEEPNODE_CLONES void poolInterior(const PoolGeometry& g, const float* __restrict x, int64_t y0, int64_t yEnd,
                                  int64_t oxBegin, int64_t oxEnd, float* __restrict out, int32_t* __restrict indices) {
  constexpr int64_t kChunk = 64;
  const int64_t step = Stride > 0 ? Stride : g.strideW;
  float best[kChunk];
  int32_t at[kChunk];
  for (int64_t c0 = oxBegin; c0 < oxEnd; c0 += kChunk) {
    const int64_t count = std::min(kChunk, oxEnd - c0);
    const int64_t ix0 = c0 * step - g.padW;  // output c0's first column tap
    for (int64_t i = 0; i < count; ++i) {
      best[i] = -std::numeric_limits<float>::infinity();
      at[i] = static_cast<int32_t>(y0 * g.w + ix0 + i * step);
    }
    for (int64_t iy = y0; iy < yEnd; iy += g.dilationH) {
      for (int64_t kx = 0; kx < g.kW; ++kx) {
        const int64_t first = iy * g.w + ix0 + kx * g.dilationW;
        const float* __restrict row = x + first;
        for (int64_t i = 0; i < count; ++i) {
          const float v = row[i * step];
          const bool take = v > best[i] || v != v;
          best[i] = take ? v : best[i];
          at[i] = take ? static_cast<int32_t>(first + i * step) : at[i];
        }
      }
    }
    std::copy(best, best + count, out + c0);
    std::copy(at, at + count, indices + c0);
  }
}

// One plane, any geometry: each row's outputs whose windows lie inside the row in
// poolInterior, the ones at its edges one by one.
void poolPlane(const PoolGeometry& g, const float* x, float* out, int32_t* indices) {
  // Outputs whose first column tap is >= 0 and whose last one is < w.
  int64_t oxBegin, firstEnd, lastBegin, oxEnd;
  window::validRange(g.w, g.oW, g.strideW, -g.padW, oxBegin, firstEnd);
  window::validRange(g.w, g.oW, g.strideW, (g.kW - 1) * g.dilationW - g.padW, lastBegin, oxEnd);
  oxEnd = std::max(oxBegin, oxEnd);
  auto interior = g.strideW == 1 ? poolInterior<1> : g.strideW == 2 ? poolInterior<2> : poolInterior<0>;
  for (int64_t oy = 0; oy < g.oH; ++oy) {
    int64_t y0 = oy * g.strideH - g.padH;
    while (y0 < 0) y0 += g.dilationH;
    const int64_t yEnd = std::min(oy * g.strideH - g.padH + (g.kH - 1) * g.dilationH + 1, g.h);
    float* outRow = out + oy * g.oW;
    int32_t* indexRow = indices + oy * g.oW;
    for (int64_t ox = 0; ox < oxBegin; ++ox) poolOne(g, x, y0, yEnd, ox, outRow[ox], indexRow[ox]);
    interior(g, x, y0, yEnd, oxBegin, oxEnd, outRow, indexRow);
    for (int64_t ox = oxEnd; ox < g.oW; ++ox) poolOne(g, x, y0, yEnd, ox, outRow[ox], indexRow[ox]);
  }
}

#if defined(__SSE2__)
// Four outputs of a 2x2 window row at once with SSE2 (part of every x86-64): `take` lanes
// where v beats best or is NaN replace both the value and its index.
inline void pick4(__m128 v, __m128i index, __m128& best, __m128i& bestIndex) {
  __m128 take = _mm_or_ps(_mm_cmpgt_ps(v, best), _mm_cmpunord_ps(v, v));
  best = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, best));
  __m128i takeInt = _mm_castps_si128(take);
  bestIndex = _mm_or_si128(_mm_and_si128(takeInt, index), _mm_andnot_si128(takeInt, bestIndex));
}

// Outputs [0, count) of one output row, count a multiple of 4; returns how many it did.
int64_t poolRow2x2Simd(const float* top, const float* bottom, int32_t base, int32_t w, int64_t count, float* out,
                       int32_t* indices) {
  const __m128i step = _mm_setr_epi32(0, 2, 4, 6);
  int64_t ox = 0;
  for (; ox + 4 <= count; ox += 4) {
    __m128 t0 = _mm_loadu_ps(top + 2 * ox), t1 = _mm_loadu_ps(top + 2 * ox + 4);
    __m128 b0 = _mm_loadu_ps(bottom + 2 * ox), b1 = _mm_loadu_ps(bottom + 2 * ox + 4);
    __m128i left = _mm_add_epi32(_mm_set1_epi32(base + 2 * static_cast<int32_t>(ox)), step);
    __m128 best = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
    __m128i at = left;
    pick4(_mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)), _mm_add_epi32(left, _mm_set1_epi32(1)), best, at);
    pick4(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), _mm_add_epi32(left, _mm_set1_epi32(w)), best, at);
    pick4(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), _mm_add_epi32(left, _mm_set1_epi32(w + 1)), best, at);
    _mm_storeu_ps(out + ox, best);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(indices + ox), at);
  }
  return ox;
}
#endif

// The common 2x2, stride 2, unpadded case without the general loop's bookkeeping.
void poolPlane2x2(const PoolGeometry& g, const float* x, float* out, int32_t* indices) {
  for (int64_t oy = 0; oy < g.oH; ++oy) {
    const float* top = x + 2 * oy * g.w;
    const float* bottom = top + g.w;
    int64_t base = 2 * oy * g.w, ox = 0;
    float* outRow = out + oy * g.oW;
    int32_t* indexRow = indices + oy * g.oW;
#if defined(__SSE2__)
    // The vector loads read 8 floats per 4 outputs, inside the row as long as 2 * oW <= w.
    ox = poolRow2x2Simd(top, bottom, static_cast<int32_t>(base), static_cast<int32_t>(g.w), g.oW, outRow, indexRow);
#endif
    for (; ox < g.oW; ++ox) {
      int64_t ix = 2 * ox;
      float best = top[ix];
      int64_t at = base + ix;
      pick(top[ix + 1], base + ix + 1, best, at);
      pick(bottom[ix], base + g.w + ix, best, at);
      pick(bottom[ix + 1], base + g.w + ix + 1, best, at);
      outRow[ox] = best;
      indexRow[ox] = static_cast<int32_t>(at);
    }
  }
}

bool isPlain2x2(const PoolGeometry& g) {
  return g.kH == 2 && g.kW == 2 && g.strideH == 2 && g.strideW == 2 && g.padH == 0 && g.padW == 0 && g.dilationH == 1 &&
         g.dilationW == 1 && 2 * g.oH <= g.h && 2 * g.oW <= g.w;
}

}  // namespace

void maxPool2d(KernelCall& call) {
  PoolGeometry g = readPoolGeometry(call);
  std::string context;
  args::pool::checkMaxPoolBuffers(call, g, context);

  float* out = call.buffers[0].as<float>();
  int32_t* indices = call.buffers[1].as<int32_t>();
  const float* x = call.buffers[2].as<float>();
  int64_t planeIn = g.h * g.w, planeOut = g.oH * g.oW;
  bool plain2x2 = isPlain2x2(g);
  int64_t grain = std::max<int64_t>(1, 16384 / (planeIn + 1));
  parallelFor(g.n * g.c, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      auto plane = plain2x2 ? poolPlane2x2 : poolPlane;
      plane(g, x + p * planeIn, out + p * planeOut, indices + p * planeOut);
    }
  });
}

void maxPool2dBackward(KernelCall& call) {
  const args::pool::MaxUnpool u = args::pool::readMaxUnpool(call);
  const int64_t planeIn = u.planeIn, planeOut = u.planeOut, planes = u.planes;

  float* gradX = call.buffers[0].as<float>();
  const float* gradOut = call.buffers[1].as<float>();
  const int32_t* indices = call.buffers[2].as<int32_t>();
  // Workers must not throw, so a bad index is skipped and reported once all have finished.
  std::atomic<bool> badIndex{false};
  int64_t grain = std::max<int64_t>(1, 16384 / (planeOut + 1));
  parallelFor(planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* dst = gradX + p * planeIn;
      const float* src = gradOut + p * planeOut;
      const int32_t* idx = indices + p * planeOut;
      for (int64_t o = 0; o < planeOut; ++o) {
        if (idx[o] < 0 || idx[o] >= planeIn) {
          badIndex = true;
          continue;
        }
        dst[idx[o]] += src[o];
      }
    }
  });
  if (badIndex) {
    args::pool::failBadIndex(call, u);
  }
}

}  // namespace deepnode::cpu
