// conv2d forward, backward-data and backward-weight for NCHW float32 with stride, padding,
// dilation and groups, as im2col/col2im around our sgemm. Threads take whole images (times
// groups), each with its own column buffer, so small-image batches like MNIST's keep every
// core busy; with a single image the GEMM threads itself instead.
#include "../core/args/conv.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "../core/threadpool.h"
#include "gemm.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

using args::conv::ConvGeometry;
using args::conv::expectFloat;
using args::conv::inputSize;
using args::conv::outputSize;
using args::conv::readGeometry;
using args::conv::weightSize;

int64_t ceilDiv(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}
int64_t floorDiv(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// Output columns ox whose input column ox * stride + offset lies inside [0, w).
void validColumns(const ConvGeometry& g, int64_t offset, int64_t& begin, int64_t& end) {
  begin = std::clamp<int64_t>(ceilDiv(-offset, g.strideW), 0, g.oW);
  end = std::clamp<int64_t>(floorDiv(g.w - 1 - offset, g.strideW) + 1, begin, g.oW);
}

// col[cInGroup * kH * kW, oH * oW] from one image's group of channels x[cInGroup, h, w];
// taps that fall in the padding read as zero.
void im2col(const ConvGeometry& g, const float* __restrict x, float* __restrict col) {
  for (int64_t c = 0; c < g.cInGroup(); ++c) {
    for (int64_t ki = 0; ki < g.kH; ++ki) {
      for (int64_t kj = 0; kj < g.kW; ++kj, col += g.pixels()) {
        int64_t offset = kj * g.dilationW - g.padW, begin, end;
        validColumns(g, offset, begin, end);
        for (int64_t oy = 0; oy < g.oH; ++oy) {
          float* __restrict row = col + oy * g.oW;
          int64_t iy = oy * g.strideH - g.padH + ki * g.dilationH;
          if (iy < 0 || iy >= g.h) {
            std::fill(row, row + g.oW, 0.0f);
            continue;
          }
          const float* __restrict src = x + (c * g.h + iy) * g.w + offset;
          std::fill(row, row + begin, 0.0f);
          if (g.strideW == 1) {
            // Rows are short (tens of floats): an inline loop beats a call to memcpy.
            for (int64_t ox = begin; ox < end; ++ox) row[ox] = src[ox];
          } else {
            for (int64_t ox = begin; ox < end; ++ox) row[ox] = src[ox * g.strideW];
          }
          std::fill(row + end, row + g.oW, 0.0f);
        }
      }
    }
  }
}

// The adjoint of im2col: adds every column entry back into gradX[cInGroup, h, w] (which the
// caller has cleared); taps in the padding are dropped.
void col2im(const ConvGeometry& g, const float* __restrict col, float* __restrict gradX) {
  for (int64_t c = 0; c < g.cInGroup(); ++c) {
    for (int64_t ki = 0; ki < g.kH; ++ki) {
      for (int64_t kj = 0; kj < g.kW; ++kj, col += g.pixels()) {
        int64_t offset = kj * g.dilationW - g.padW, begin, end;
        validColumns(g, offset, begin, end);
        for (int64_t oy = 0; oy < g.oH; ++oy) {
          int64_t iy = oy * g.strideH - g.padH + ki * g.dilationH;
          if (iy < 0 || iy >= g.h) continue;
          const float* __restrict row = col + oy * g.oW;
          float* __restrict dst = gradX + (c * g.h + iy) * g.w + offset;
          if (g.strideW == 1) {
            for (int64_t ox = begin; ox < end; ++ox) dst[ox] += row[ox];
          } else {
            for (int64_t ox = begin; ox < end; ++ox) dst[ox * g.strideW] += row[ox];
          }
        }
      }
    }
  }
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
  int64_t colSize = g.pointwise() ? 0 : g.colRows() * g.pixels();
  float* cols = scratch(static_cast<size_t>(chunks * colSize));
  forEachChunk(items, chunks, [&](int64_t chunk, int64_t begin, int64_t end) {
    float* col = cols + chunk * colSize;
    for (int64_t item = begin; item < end; ++item) {
      int64_t image = item / g.groups, group = item % g.groups;
      const float* xg = x + (image * g.cIn + group * g.cInGroup()) * g.h * g.w;
      const float* weightg = weight + group * g.cOutGroup() * g.colRows();
      float* outg = out + (image * g.cOut + group * g.cOutGroup()) * g.pixels();
      // out [cOutGroup, pixels] = weight [cOutGroup, colRows] * col [colRows, pixels]
      if (!g.pointwise()) im2col(g, xg, col);
      sgemm(false, false, g.cOutGroup(), g.pixels(), g.colRows(), 1.0f, weightg, g.colRows(), g.pointwise() ? xg : col,
            g.pixels(), 0.0f, outg, g.pixels());
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
  int64_t colSize = g.pointwise() ? 0 : g.colRows() * g.pixels();
  float* cols = scratch(static_cast<size_t>(chunks * colSize));
  forEachChunk(items, chunks, [&](int64_t chunk, int64_t begin, int64_t end) {
    float* col = cols + chunk * colSize;
    for (int64_t item = begin; item < end; ++item) {
      int64_t image = item / g.groups, group = item % g.groups;
      float* gradXg = gradX + (image * g.cIn + group * g.cInGroup()) * g.h * g.w;
      const float* gradOutg = gradOut + (image * g.cOut + group * g.cOutGroup()) * g.pixels();
      const float* weightg = weight + group * g.cOutGroup() * g.colRows();
      // col = weight^T [colRows, cOutGroup] * gradOut [cOutGroup, pixels]
      sgemm(true, false, g.colRows(), g.pixels(), g.cOutGroup(), 1.0f, weightg, g.colRows(), gradOutg, g.pixels(), 0.0f,
            g.pointwise() ? gradXg : col, g.pixels());
      if (g.pointwise()) continue;
      std::fill(gradXg, gradXg + g.cInGroup() * g.h * g.w, 0.0f);
      col2im(g, col, gradXg);
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
  int64_t colSize = g.pointwise() ? 0 : g.colRows() * g.pixels();
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
        if (!g.pointwise()) im2col(g, xg, col);
        // gradWeight [cOutGroup, colRows] += gradOut [cOutGroup, pixels] * col^T [pixels, colRows]
        sgemm(false, true, g.cOutGroup(), g.colRows(), g.pixels(), 1.0f, gradOutg, g.pixels(), g.pointwise() ? xg : col,
              g.pixels(), image == begin ? 0.0f : 1.0f, sum + group * g.cOutGroup() * g.colRows(), g.colRows());
      }
    }
  });
  for (int64_t chunk = 1; chunk < chunks; ++chunk) {
    const float* part = partials + (chunk - 1) * wSize;
    for (int64_t i = 0; i < wSize; ++i) gradWeight[i] += part[i];
  }
}

}  // namespace deepnode::cpu
