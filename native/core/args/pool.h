// The pooling kernels' attributes, geometry and checks, shared by the cpu kernels
// (native/cpu/pool.cc, avgpool.cc) and the CUDA ones (native/cuda/kernels/pool.cu), so both
// accept the same calls and fail with the same codes and messages. The window helpers are
// DEEPNODE_HD: the CUDA kernels call them per output element.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "../hd.h"
#include "../kernel.h"

namespace deepnode::args::pool {

// ---------------------------------------------------------------------------------------
// max_pool2d

// The attributes max and avg pooling both take: x [n, c, h, w], the kernel, stride and padding.
struct PoolWindow {
  int64_t n, c, h, w, kH, kW, strideH, strideW, padH, padW;
};

inline PoolWindow readPoolWindow(const KernelCall& call) {
  return {call.integer("n"),       call.integer("c"),      call.integer("h"),       call.integer("w"),
          call.integer("kH"),      call.integer("kW"),     call.integer("strideH"), call.integer("strideW"),
          call.integer("padH", 0), call.integer("padW", 0)};
}

struct PoolGeometry : PoolWindow {
  int64_t dilationH, dilationW;
  bool ceilMode;
  int64_t oH, oW;
};

inline std::string describePool(const PoolGeometry& g) {
  return "x " + shapeString({g.n, g.c, g.h, g.w}) + ", kernel " + shapeString({g.kH, g.kW}) + ", stride " +
         shapeString({g.strideH, g.strideW}) + ", padding " + shapeString({g.padH, g.padW}) + ", dilation " +
         shapeString({g.dilationH, g.dilationW}) + (g.ceilMode ? ", ceil mode" : "");
}

// PyTorch's rule: floor (or ceil) of the window count, but in ceil mode the last window must
// start inside the input or its left padding.
inline int64_t pooledSize(int64_t in, int64_t kernel, int64_t pad, int64_t stride, int64_t dilation, bool ceilMode) {
  int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (span + (ceilMode ? stride - 1 : 0)) / stride + 1;
  if (ceilMode && (out - 1) * stride >= in + pad) --out;
  return out;
}

inline PoolGeometry readPoolGeometry(const KernelCall& call) {
  PoolGeometry g{readPoolWindow(call),
                 call.integer("dilationH", 1),
                 call.integer("dilationW", 1),
                 call.flag("ceilMode", false),
                 0,
                 0};
  if (g.n < 0 || g.c < 0 || g.h < 1 || g.w < 1 || g.kH < 1 || g.kW < 1) {
    call.fail("ERR_SHAPE", "sizes and kernel must be positive (batch and channels may be 0): " + describePool(g));
  }
  if (g.strideH < 1 || g.strideW < 1 || g.dilationH < 1 || g.dilationW < 1 || g.padH < 0 || g.padW < 0) {
    call.fail("ERR_VALUE", "stride and dilation must be >= 1 and padding >= 0: " + describePool(g));
  }
  if (g.padH > g.kH / 2 || g.padW > g.kW / 2) {
    call.fail("ERR_VALUE", "padding should be at most half of the kernel size: " + describePool(g));
  }
  g.oH = pooledSize(g.h, g.kH, g.padH, g.strideH, g.dilationH, g.ceilMode);
  g.oW = pooledSize(g.w, g.kW, g.padW, g.strideW, g.dilationW, g.ceilMode);
  if (g.oH < 1 || g.oW < 1) {
    call.fail("ERR_SHAPE", "output size " + shapeString({g.oH, g.oW}) + " is too small: " + describePool(g));
  }
  const int64_t int32Max = std::numeric_limits<int32_t>::max();
  int64_t planes, total;
  bool planeTooBig = g.h > int32Max || g.w > int32Max || g.h * g.w > int32Max;
  if (planeTooBig || __builtin_mul_overflow(g.n, g.c, &planes) || __builtin_mul_overflow(planes, g.h * g.w, &total)) {
    call.fail("ERR_SHAPE", "a plane must hold fewer than 2^31 elements: " + describePool(g));
  }
  return g;
}

// Checks buffer `index` for `dtype` and exactly `expected` elements; `context` ends the error.
inline void expectSizeOf(const KernelCall& call, size_t index, const char* role, DType dtype, int64_t expected,
                         const std::string& context) {
  const Buffer& buf = call.buffer(index, role, dtype);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + context);
  }
}

// max_pool2d's buffers: out and indices (int32) [n, c, oH, oW], x [n, c, h, w]. Returns the
// output's element count; `context` names the shapes in errors.
inline int64_t checkMaxPoolBuffers(const KernelCall& call, const PoolGeometry& g, std::string& context) {
  context = describePool(g) + ", out " + shapeString({g.n, g.c, g.oH, g.oW});
  int64_t outSize = g.n * g.c * g.oH * g.oW;
  expectSizeOf(call, 0, "out", DType::Float32, outSize, context);
  expectSizeOf(call, 1, "indices", DType::Int32, outSize, context);
  expectSizeOf(call, 2, "x", DType::Float32, g.n * g.c * g.h * g.w, context);
  return outSize;
}

// max_pool2d_backward's sizes, checked, with its buffers gradX [n, c, h, w], gradOut and
// indices (int32) [n, c, oH, oW].
struct MaxUnpool {
  int64_t planeIn, planeOut, planes, inSize, outSize;
  std::string context;
};

inline MaxUnpool readMaxUnpool(const KernelCall& call) {
  int64_t n = call.integer("n"), c = call.integer("c"), h = call.integer("h"), w = call.integer("w");
  int64_t oH = call.integer("oH"), oW = call.integer("oW");
  MaxUnpool u{};
  u.context = "x " + shapeString({n, c, h, w}) + ", out " + shapeString({n, c, oH, oW});
  if (n < 0 || c < 0 || h < 1 || w < 1 || oH < 1 || oW < 1) {
    call.fail("ERR_SHAPE", "sizes must be positive: " + u.context);
  }
  bool overflow = __builtin_mul_overflow(h, w, &u.planeIn) || __builtin_mul_overflow(oH, oW, &u.planeOut) ||
                  __builtin_mul_overflow(n, c, &u.planes) || __builtin_mul_overflow(u.planes, u.planeIn, &u.inSize) ||
                  __builtin_mul_overflow(u.planes, u.planeOut, &u.outSize);
  if (overflow) call.fail("ERR_SHAPE", "sizes overflow 64-bit element counts: " + u.context);
  expectSizeOf(call, 0, "gradX", DType::Float32, u.inSize, u.context);
  expectSizeOf(call, 1, "gradOut", DType::Float32, u.outSize, u.context);
  expectSizeOf(call, 2, "indices", DType::Int32, u.outSize, u.context);
  return u;
}

// The error when an index lies outside its plane.
[[noreturn]] inline void failBadIndex(const KernelCall& call, const MaxUnpool& u) {
  call.fail("ERR_INDEX", "an index lies outside its h * w plane of " + std::to_string(u.planeIn) + ": " + u.context);
}

// ---------------------------------------------------------------------------------------
// avg_pool2d and adaptive_avg_pool2d

struct AvgGeometry : PoolWindow {
  bool ceilMode, countIncludePad;
  int64_t divisorOverride, oH, oW;
  bool adaptive;  // PyTorch's adaptive windows over [h, w] -> [oH, oW]; the rest unused
};

struct Window {
  int64_t h0, h1, w0, w1;
  double divisor;
};

inline std::string describeAvg(const AvgGeometry& g) {
  return "x " + shapeString({g.n, g.c, g.h, g.w}) + ", kernel " + shapeString({g.kH, g.kW}) + ", stride " +
         shapeString({g.strideH, g.strideW}) + ", padding " + shapeString({g.padH, g.padW}) +
         (g.ceilMode ? ", ceil mode" : "");
}

inline int64_t avgPooledSize(int64_t in, int64_t kernel, int64_t pad, int64_t stride, bool ceilMode) {
  int64_t span = in + 2 * pad - kernel;
  if (span < 0) return 0;
  int64_t out = (span + (ceilMode ? stride - 1 : 0)) / stride + 1;
  if (ceilMode && (out - 1) * stride >= in + pad) --out;
  return out;
}

inline bool overflows(int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t ab, abc, abcd;
  return __builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc) ||
         __builtin_mul_overflow(abc, d, &abcd);
}

inline AvgGeometry readAvgGeometry(const KernelCall& call) {
  AvgGeometry g{readPoolWindow(call),
                call.flag("ceilMode", false),
                call.flag("countIncludePad", true),
                call.integer("divisorOverride", 0),
                0,
                0,
                false};
  if (g.n < 0 || g.c < 0 || g.h < 1 || g.w < 1 || g.kH < 1 || g.kW < 1 || overflows(g.n, g.c, g.h, g.w)) {
    call.fail("ERR_SHAPE", "sizes and kernel must be positive (batch and channels may be 0): " + describeAvg(g));
  }
  if (g.strideH < 1 || g.strideW < 1 || g.padH < 0 || g.padW < 0 || g.divisorOverride < 0) {
    call.fail("ERR_VALUE", "stride must be >= 1, padding and divisorOverride >= 0: " + describeAvg(g));
  }
  if (g.padH > g.kH / 2 || g.padW > g.kW / 2) {
    call.fail("ERR_VALUE", "padding should be at most half of the kernel size: " + describeAvg(g));
  }
  g.oH = avgPooledSize(g.h, g.kH, g.padH, g.strideH, g.ceilMode);
  g.oW = avgPooledSize(g.w, g.kW, g.padW, g.strideW, g.ceilMode);
  if (g.oH < 1 || g.oW < 1) {
    call.fail("ERR_SHAPE", "output size " + shapeString({g.oH, g.oW}) + " is too small: " + describeAvg(g));
  }
  return g;
}

// Reads an adaptive pool's sizes (n, c, h, w, oH, oW and `adaptive` set); `context` names
// them in errors.
inline AvgGeometry readAdaptiveGeometry(const KernelCall& call, std::string& context) {
  AvgGeometry g{};
  g.n = call.integer("n"), g.c = call.integer("c"), g.h = call.integer("h"), g.w = call.integer("w");
  g.oH = call.integer("oH"), g.oW = call.integer("oW");
  g.adaptive = true;
  context = "x " + shapeString({g.n, g.c, g.h, g.w}) + ", out " + shapeString({g.n, g.c, g.oH, g.oW});
  if (call.integer("rank", 4) != 4) call.fail("ERR_SHAPE", "x must be [n, c, h, w]: " + context);
  if (g.n < 0 || g.c < 0 || g.h < 1 || g.w < 1 || g.oH < 1 || g.oW < 1 || overflows(g.n, g.c, g.h, g.w) ||
      overflows(g.n, g.c, g.oH, g.oW)) {
    call.fail("ERR_SHAPE", "sizes must be positive (batch and channels may be 0): " + context);
  }
  return g;
}

DEEPNODE_HD inline int64_t minOf(int64_t a, int64_t b) {
  return a < b ? a : b;
}
DEEPNODE_HD inline int64_t maxOf(int64_t a, int64_t b) {
  return a > b ? a : b;
}

// avg_pool2d's input window of output (oy, ox), clipped to the input, and its divisor.
DEEPNODE_HD inline Window avgWindow(const AvgGeometry& g, int64_t oy, int64_t ox) {
  int64_t h0 = oy * g.strideH - g.padH, w0 = ox * g.strideW - g.padW;
  int64_t h1 = minOf(h0 + g.kH, g.h + g.padH), w1 = minOf(w0 + g.kW, g.w + g.padW);
  double padded = static_cast<double>((h1 - h0) * (w1 - w0));
  h0 = maxOf(h0, 0);
  w0 = maxOf(w0, 0);
  h1 = minOf(h1, g.h);
  w1 = minOf(w1, g.w);
  double inside = static_cast<double>((h1 - h0) * (w1 - w0));
  double divisor =
      g.divisorOverride > 0 ? static_cast<double>(g.divisorOverride) : (g.countIncludePad ? padded : inside);
  return Window{h0, h1, w0, w1, divisor};
}

// adaptive_avg_pool2d's window of output (oy, ox): PyTorch's floor/ceil split of [h, w].
DEEPNODE_HD inline Window adaptiveWindow(int64_t h, int64_t w, int64_t oH, int64_t oW, int64_t oy, int64_t ox) {
  int64_t h0 = oy * h / oH, h1 = ((oy + 1) * h + oH - 1) / oH;
  int64_t w0 = ox * w / oW, w1 = ((ox + 1) * w + oW - 1) / oW;
  return Window{h0, h1, w0, w1, static_cast<double>((h1 - h0) * (w1 - w0))};
}

}  // namespace deepnode::args::pool
