// conv2d forward, backward-data and backward-weight for NCHW float32 with stride, padding,
// dilation and groups, as im2col/col2im around our sgemm. Threads take whole images (times
// groups), each with its own column buffer, so small-image batches like MNIST's keep every
// core busy; with a single image the GEMM threads itself instead.
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

struct ConvGeometry {
  int64_t n, cIn, h, w, cOut, kH, kW, strideH, strideW, padH, padW, dilationH, dilationW, groups;
  int64_t oH, oW;

  int64_t cInGroup() const { return cIn / groups; }
  int64_t cOutGroup() const { return cOut / groups; }
  int64_t colRows() const { return cInGroup() * kH * kW; }  // depth of the GEMM
  int64_t pixels() const { return oH * oW; }
  // A 1x1 kernel with unit stride and no padding reads the input as its own column matrix.
  bool pointwise() const { return kH == 1 && kW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0; }
};

int64_t checkedProduct(const KernelCall& call, std::initializer_list<int64_t> dims) {
  int64_t total = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(total, d, &total)) call.fail("ERR_SHAPE", "sizes overflow 64-bit element counts");
  }
  return total;
}

std::string describe(const ConvGeometry& g) {
  return "x " + shapeString({g.n, g.cIn, g.h, g.w}) + ", weight " +
         shapeString({g.cOut, g.groups > 0 ? g.cIn / g.groups : 0, g.kH, g.kW}) + ", stride " +
         shapeString({g.strideH, g.strideW}) + ", padding " + shapeString({g.padH, g.padW}) + ", dilation " +
         shapeString({g.dilationH, g.dilationW}) + ", groups " + std::to_string(g.groups);
}

void checkGeometry(const KernelCall& call, ConvGeometry& g) {
  bool positive = g.cIn >= 1 && g.h >= 1 && g.w >= 1 && g.cOut >= 1 && g.kH >= 1 && g.kW >= 1;
  bool stepsOk = g.strideH >= 1 && g.strideW >= 1 && g.dilationH >= 1 && g.dilationW >= 1;
  if (g.n < 0 || !positive) call.fail("ERR_SHAPE", "sizes must be positive (batch may be 0): " + describe(g));
  if (!stepsOk || g.padH < 0 || g.padW < 0 || g.groups < 1) {
    call.fail("ERR_VALUE", "stride and dilation must be >= 1, padding >= 0 and groups >= 1: " + describe(g));
  }
  if (g.cIn % g.groups != 0 || g.cOut % g.groups != 0) {
    call.fail("ERR_SHAPE", "in channels " + std::to_string(g.cIn) + " and out channels " + std::to_string(g.cOut) +
                               " must both be divisible by groups: " + describe(g));
  }
  int64_t spanH = g.dilationH * (g.kH - 1) + 1, spanW = g.dilationW * (g.kW - 1) + 1;
  g.oH = (g.h + 2 * g.padH - spanH) >= 0 ? (g.h + 2 * g.padH - spanH) / g.strideH + 1 : 0;
  g.oW = (g.w + 2 * g.padW - spanW) >= 0 ? (g.w + 2 * g.padW - spanW) / g.strideW + 1 : 0;
  if (g.oH < 1 || g.oW < 1) {
    call.fail("ERR_SHAPE", "the dilated kernel " + shapeString({spanH, spanW}) + " is larger than the padded input " +
                               shapeString({g.h + 2 * g.padH, g.w + 2 * g.padW}) + ": " + describe(g));
  }
  checkedProduct(call, {g.n, g.cOut, g.oH, g.oW, g.kH, g.kW});
  checkedProduct(call, {g.n, g.cIn, g.h, g.w, g.kH, g.kW});
}

ConvGeometry readGeometry(const KernelCall& call) {
  ConvGeometry g{};
  g.n = call.integer("n");
  g.cIn = call.integer("cIn");
  g.h = call.integer("h");
  g.w = call.integer("w");
  g.cOut = call.integer("cOut");
  g.kH = call.integer("kH");
  g.kW = call.integer("kW");
  g.strideH = call.integer("strideH", 1);
  g.strideW = call.integer("strideW", 1);
  g.padH = call.integer("padH", 0);
  g.padW = call.integer("padW", 0);
  g.dilationH = call.integer("dilationH", 1);
  g.dilationW = call.integer("dilationW", 1);
  g.groups = call.integer("groups", 1);
  checkGeometry(call, g);
  return g;
}

int64_t inputSize(const ConvGeometry& g) {
  return g.n * g.cIn * g.h * g.w;
}
int64_t weightSize(const ConvGeometry& g) {
  return g.cOut * g.colRows();
}
int64_t outputSize(const ConvGeometry& g) {
  return g.n * g.cOut * g.pixels();
}

void expectFloat(const KernelCall& call, const ConvGeometry& g, size_t index, const char* role, int64_t expected) {
  const Buffer& buf = call.buffer(index, role, DType::Float32);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + describe(g) + ", out " +
                               shapeString({g.n, g.cOut, g.oH, g.oW}));
  }
}

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
