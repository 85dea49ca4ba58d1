// conv2d forward, backward-data and backward-weight for NCHW float32 with stride, padding,
// dilation and groups, as im2col/col2im around our sgemm. Threads take whole images (times
// groups), each with its own column buffer, so small-image batches like MNIST's keep every
// core busy; with a single image the GEMM threads itself instead. An image's columns are made
// a block of output rows at a time, so that the block stays in cache for the GEMM that packs
// it (a ResNet 3x3 layer on 56x56 has 7 MiB of columns per image).
#include "../core/args/conv.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "../core/threadpool.h"
#include "gemm.h"
#include "kernels.h"
#include "window.h"

namespace deepnode::cpu {

namespace {

using args::conv::ConvGeometry;
using args::conv::expectFloat;
using args::conv::inputSize;
using args::conv::outputSize;
using args::conv::readGeometry;
using args::conv::weightSize;

using window::validRange;

// A block of output rows [oy0, oy1): its columns are colRows x (oy1 - oy0) * oW.
struct RowBlock {
  int64_t oy0, oy1;
  int64_t pixels(const ConvGeometry& g) const { return (oy1 - oy0) * g.oW; }
};

// Output rows per block. An image's columns up to kWholeColumnFloats (1 MiB) are made whole;
// larger ones in blocks of up to kColumnBlockFloats (512 KiB), the last block taking what is
// left. That size measured best here (Xeon, 2 MiB L2) among 256 KiB to 4 MiB: a ResNet 3x3
// 64->64 layer on 56x56 went from 181 to about 245 GFLOP/s forward, while the MNIST net's 663 KiB
// lost 6% when split. (Blocks of equal sizes did worse: 7 rows of 28 make 196 columns, a
// sliver past the GEMM's 32-column panels, where 8 rows make 224.)
constexpr int64_t kWholeColumnFloats = 256 * 1024;
constexpr int64_t kColumnBlockFloats = 128 * 1024;

int64_t blockRows(const ConvGeometry& g) {
  const int64_t perRow = std::max<int64_t>(1, g.colRows() * g.oW);
  if (perRow * g.oH <= kWholeColumnFloats) return g.oH;
  return std::clamp<int64_t>(kColumnBlockFloats / perRow, 1, g.oH);
}

// Calls fn(block) for the blocks of output rows, in order.
template <typename Fn>
void forEachRowBlock(const ConvGeometry& g, Fn&& fn) {
  const int64_t rows = blockRows(g);
  for (int64_t oy0 = 0; oy0 < g.oH; oy0 += rows) fn(RowBlock{oy0, std::min(g.oH, oy0 + rows)});
}

// One tap's row of columns: zeros where the input column falls in the padding. Stride is the
// input step when known at compile time (1 and 2 are common), else 0 and `stride` gives it.
template <int Stride>
inline __attribute__((always_inline)) void tapRow(float* __restrict row, const float* __restrict src, int64_t begin,
                                                  int64_t end, int64_t oW, int64_t stride) {
  const int64_t step = Stride > 0 ? Stride : stride;
  for (int64_t ox = 0; ox < begin; ++ox) row[ox] = 0.0f;
  for (int64_t ox = begin; ox < end; ++ox) row[ox] = src[ox * step];
  for (int64_t ox = end; ox < oW; ++ox) row[ox] = 0.0f;
}

// One tap of the kernel (input channel, kernel row and column) over a block: its row of the
// column matrix, and the output rows [first, last) of the block and columns [begin, end) whose
// input lies inside the image.
struct Tap {
  int64_t index = 0, channel = 0, rowOffset = 0, colOffset = 0;
  int64_t first = 0, last = 0, begin = 0, end = 0;
  // Where output row oy's column 0 reads (begin <= column < end are inside the image).
  int64_t inputOffset(const ConvGeometry& g, int64_t oy) const {
    return (channel * g.h + oy * g.strideH + rowOffset) * g.w + colOffset;
  }
};

// Calls fn(tap) for the block's taps in the column matrix's row order.
template <typename Fn>
void forEachTap(const ConvGeometry& g, RowBlock block, Fn&& fn) {
  Tap t;
  for (t.channel = 0; t.channel < g.cInGroup(); ++t.channel) {
    for (int64_t ki = 0; ki < g.kH; ++ki) {
      t.rowOffset = ki * g.dilationH - g.padH;
      validRange(g.h, g.oH, g.strideH, t.rowOffset, t.first, t.last);
      t.first = std::clamp(t.first, block.oy0, block.oy1);
      t.last = std::clamp(t.last, t.first, block.oy1);
      for (int64_t kj = 0; kj < g.kW; ++kj, ++t.index) {
        t.colOffset = kj * g.dilationW - g.padW;
        validRange(g.w, g.oW, g.strideW, t.colOffset, t.begin, t.end);
        fn(t);
      }
    }
  }
}

template <int Stride>
void im2colRows(const ConvGeometry& g, const float* __restrict x, float* __restrict col, RowBlock block) {
  const int64_t width = block.pixels(g);
  forEachTap(g, block, [&](const Tap& t) {
    float* plane = col + t.index * width;
    std::fill(plane, plane + (t.first - block.oy0) * g.oW, 0.0f);
    std::fill(plane + (t.last - block.oy0) * g.oW, plane + width, 0.0f);
    for (int64_t oy = t.first; oy < t.last; ++oy) {
      tapRow<Stride>(plane + (oy - block.oy0) * g.oW, x + t.inputOffset(g, oy), t.begin, t.end, g.oW, g.strideW);
    }
  });
}

// col[cInGroup * kH * kW, block pixels] from one image's group of channels x[cInGroup, h, w],
// for the block's output rows; taps that fall in the padding read as zero.
void im2col(const ConvGeometry& g, const float* x, float* col, RowBlock block) {
  if (g.strideW == 1) {
    im2colRows<1>(g, x, col, block);
  } else if (g.strideW == 2) {
    im2colRows<2>(g, x, col, block);
  } else {
    im2colRows<0>(g, x, col, block);
  }
}

// The adjoint of im2col: adds every column entry of the block back into gradX[cInGroup, h, w]
// (which the caller has cleared); taps in the padding are dropped.
void col2im(const ConvGeometry& g, const float* __restrict col, float* __restrict gradX, RowBlock block) {
  const int64_t width = block.pixels(g);
  forEachTap(g, block, [&](const Tap& t) {
    for (int64_t oy = t.first; oy < t.last; ++oy) {
      const float* __restrict row = col + t.index * width + (oy - block.oy0) * g.oW;
      float* __restrict dst = gradX + t.inputOffset(g, oy);
      if (g.strideW == 1) {
        for (int64_t ox = t.begin; ox < t.end; ++ox) dst[ox] += row[ox];
      } else {
        for (int64_t ox = t.begin; ox < t.end; ++ox) dst[ox * g.strideW] += row[ox];
      }
    }
  });
}

// Grow-only scratch owned by the calling thread; it is sized before any parallel region, so
// an allocation failure surfaces as an error on that thread rather than in a worker.
float* scratch(size_t count) {
  thread_local std::unique_ptr<float[]> data;
  thread_local size_t capacity = 0;
  if (count > capacity) {
    data.reset(new float[count]);
    capacity = count;
  }
  return data.get();
}

// Calls fn(chunk, begin, end) for contiguous ranges of [0, items) on up to maxThreads()
// threads; chunk numbers index per-thread scratch. Returns the number of chunks.
int64_t chunkCount(int64_t items) {
  return std::max<int64_t>(1, std::min<int64_t>(items, maxThreads()));
}

void forEachChunk(int64_t items, int64_t chunks, const std::function<void(int64_t, int64_t, int64_t)>& fn) {
  if (chunks <= 1) {
    fn(0, 0, items);
    return;
  }
  parallelFor(chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) fn(c, items * c / chunks, items * (c + 1) / chunks);
  });
}

void addBias(const ConvGeometry& g, const float* bias, float* out) {
  for (int64_t oc = 0; oc < g.cOutGroup(); ++oc) {
    float* row = out + oc * g.pixels();
    for (int64_t p = 0; p < g.pixels(); ++p) row[p] += bias[oc];
  }
}

}  // namespace

void conv2d(KernelCall& call) {
  ConvGeometry g = readGeometry(call);
  expectFloat(call, g, 0, "out", outputSize(g));
  expectFloat(call, g, 1, "x", inputSize(g));
  expectFloat(call, g, 2, "weight", weightSize(g));
  bool hasBias = call.hasBuffer(3);
  if (hasBias) expectFloat(call, g, 3, "bias", g.cOut);

  float* out = call.buffers[0].as<float>();
  const float* x = call.buffers[1].as<float>();
  const float* weight = call.buffers[2].as<float>();
  const float* bias = hasBias ? call.buffers[3].as<float>() : nullptr;
  int64_t items = g.n * g.groups, chunks = chunkCount(items);
  int64_t colSize = g.pointwise() ? 0 : g.colRows() * blockRows(g) * g.oW;
  float* cols = scratch(static_cast<size_t>(chunks * colSize));
  forEachChunk(items, chunks, [&](int64_t chunk, int64_t begin, int64_t end) {
    float* col = cols + chunk * colSize;
    for (int64_t item = begin; item < end; ++item) {
      int64_t image = item / g.groups, group = item % g.groups;
      const float* xg = x + (image * g.cIn + group * g.cInGroup()) * g.h * g.w;
      const float* weightg = weight + group * g.cOutGroup() * g.colRows();
      float* outg = out + (image * g.cOut + group * g.cOutGroup()) * g.pixels();
      if (g.pointwise()) {
        sgemm(false, false, g.cOutGroup(), g.pixels(), g.colRows(), 1.0f, weightg, g.colRows(), xg, g.pixels(), 0.0f,
              outg, g.pixels());
      } else {
        // out [cOutGroup, block pixels] = weight [cOutGroup, colRows] * col [colRows, block pixels]
        forEachRowBlock(g, [&](RowBlock block) {
          im2col(g, xg, col, block);
          sgemm(false, false, g.cOutGroup(), block.pixels(g), g.colRows(), 1.0f, weightg, g.colRows(), col,
                block.pixels(g), 0.0f, outg + block.oy0 * g.oW, g.pixels());
        });
      }
      if (bias != nullptr) addBias(g, bias + group * g.cOutGroup(), outg);
    }
  });
}

void conv2dBackwardData(KernelCall& call) {
  ConvGeometry g = readGeometry(call);
  expectFloat(call, g, 0, "gradX", inputSize(g));
  expectFloat(call, g, 1, "gradOut", outputSize(g));
  expectFloat(call, g, 2, "weight", weightSize(g));

  float* gradX = call.buffers[0].as<float>();
  const float* gradOut = call.buffers[1].as<float>();
  const float* weight = call.buffers[2].as<float>();
  int64_t items = g.n * g.groups, chunks = chunkCount(items);
  int64_t colSize = g.pointwise() ? 0 : g.colRows() * blockRows(g) * g.oW;
  float* cols = scratch(static_cast<size_t>(chunks * colSize));
  forEachChunk(items, chunks, [&](int64_t chunk, int64_t begin, int64_t end) {
    float* col = cols + chunk * colSize;
    for (int64_t item = begin; item < end; ++item) {
      int64_t image = item / g.groups, group = item % g.groups;
      float* gradXg = gradX + (image * g.cIn + group * g.cInGroup()) * g.h * g.w;
      const float* gradOutg = gradOut + (image * g.cOut + group * g.cOutGroup()) * g.pixels();
      const float* weightg = weight + group * g.cOutGroup() * g.colRows();
      if (g.pointwise()) {
        sgemm(true, false, g.colRows(), g.pixels(), g.cOutGroup(), 1.0f, weightg, g.colRows(), gradOutg, g.pixels(),
              0.0f, gradXg, g.pixels());
        continue;
      }
      std::fill(gradXg, gradXg + g.cInGroup() * g.h * g.w, 0.0f);
      // col = weight^T [colRows, cOutGroup] * gradOut [cOutGroup, block pixels]
      forEachRowBlock(g, [&](RowBlock block) {
        sgemm(true, false, g.colRows(), block.pixels(g), g.cOutGroup(), 1.0f, weightg, g.colRows(),
              gradOutg + block.oy0 * g.oW, g.pixels(), 0.0f, col, block.pixels(g));
        col2im(g, col, gradXg, block);
      });
    }
  });
}

void conv2dBackwardWeight(KernelCall& call) {
  ConvGeometry g = readGeometry(call);
  expectFloat(call, g, 0, "gradWeight", weightSize(g));
  expectFloat(call, g, 1, "gradOut", outputSize(g));
  expectFloat(call, g, 2, "x", inputSize(g));

  float* gradWeight = call.buffers[0].as<float>();
  const float* gradOut = call.buffers[1].as<float>();
  const float* x = call.buffers[2].as<float>();
  int64_t chunks = chunkCount(g.n), wSize = weightSize(g);
  int64_t colSize = g.pointwise() ? 0 : g.colRows() * blockRows(g) * g.oW;
  // Chunk 0 sums straight into gradWeight, the others into partial sums added at the end.
  float* work = scratch(static_cast<size_t>(chunks * colSize + (chunks - 1) * wSize));
  float* partials = work + chunks * colSize;
  if (g.n == 0) std::fill(gradWeight, gradWeight + wSize, 0.0f);
  forEachChunk(g.n, chunks, [&](int64_t chunk, int64_t begin, int64_t end) {
    float* col = work + chunk * colSize;
    float* sum = chunk == 0 ? gradWeight : partials + (chunk - 1) * wSize;
    for (int64_t image = begin; image < end; ++image) {
      for (int64_t group = 0; group < g.groups; ++group) {
        const float* xg = x + (image * g.cIn + group * g.cInGroup()) * g.h * g.w;
        const float* gradOutg = gradOut + (image * g.cOut + group * g.cOutGroup()) * g.pixels();
        float* sumg = sum + group * g.cOutGroup() * g.colRows();
        if (g.pointwise()) {
          sgemm(false, true, g.cOutGroup(), g.colRows(), g.pixels(), 1.0f, gradOutg, g.pixels(), xg, g.pixels(),
                image == begin ? 0.0f : 1.0f, sumg, g.colRows());
          continue;
        }
        // gradWeight [cOutGroup, colRows] += gradOut [cOutGroup, block pixels] * col^T [block pixels, colRows]
        forEachRowBlock(g, [&](RowBlock block) {
          im2col(g, xg, col, block);
          const float beta = image == begin && block.oy0 == 0 ? 0.0f : 1.0f;
          sgemm(false, true, g.cOutGroup(), g.colRows(), block.pixels(g), 1.0f, gradOutg + block.oy0 * g.oW, g.pixels(),
                col, block.pixels(g), beta, sumg, g.colRows());
        });
      }
    }
  });
  for (int64_t chunk = 1; chunk < chunks; ++chunk) {
    const float* part = partials + (chunk - 1) * wSize;
    for (int64_t i = 0; i < wSize; ++i) gradWeight[i] += part[i];
  }
}

}  // namespace deepnode::cpu
