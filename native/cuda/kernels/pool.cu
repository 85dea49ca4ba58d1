// Pooling on CUDA for NCHW float32 with the cpu kernels' buffers, attributes and checks
// (native/cpu/pool.cc, avgpool.cc): max_pool2d (padding reads as -inf, the first maximum
// in row-major window order wins ties, a NaN counts as the maximum, indices are flat
// h * w positions in each plane), avg_pool2d and adaptive_avg_pool2d with PyTorch's windows
// and divisors, each window summed in double. One thread per output element; the
// backward kernels add into gradX with atomicAddTo, as the cpu kernels add into it.
#include <cstdint>
#include <limits>
#include <string>

#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

// ---------------------------------------------------------------------------------------
// max_pool2d

struct PoolGeometry {
  int64_t n, c, h, w, kH, kW, strideH, strideW, padH, padW, dilationH, dilationW;
  bool ceilMode;
  int64_t oH, oW;
};

std::string describePool(const PoolGeometry& g) {
  return "x " + shapeString({g.n, g.c, g.h, g.w}) + ", kernel " + shapeString({g.kH, g.kW}) + ", stride " +
         shapeString({g.strideH, g.strideW}) + ", padding " + shapeString({g.padH, g.padW}) + ", dilation " +
         shapeString({g.dilationH, g.dilationW}) + (g.ceilMode ? ", ceil mode" : "");
}

// PyTorch's rule: floor (or ceil) of the window count, but in ceil mode the last window must
// start inside the input or its left padding.
int64_t pooledSize(int64_t in, int64_t kernel, int64_t pad, int64_t stride, int64_t dilation, bool ceilMode) {
  int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (span + (ceilMode ? stride - 1 : 0)) / stride + 1;
  if (ceilMode && (out - 1) * stride >= in + pad) --out;
  return out;
}

PoolGeometry readPoolGeometry(const KernelCall& call) {
  PoolGeometry g{call.integer("n"),
                 call.integer("c"),
                 call.integer("h"),
                 call.integer("w"),
                 call.integer("kH"),
                 call.integer("kW"),
                 call.integer("strideH"),
                 call.integer("strideW"),
                 call.integer("padH", 0),
                 call.integer("padW", 0),
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

void expectSizeOf(const KernelCall& call, size_t index, const char* role, DType dtype, int64_t expected,
                  const std::string& context) {
  const Buffer& buf = call.buffer(index, role, dtype);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + context);
  }
}

// One output element's window. The first valid tap seeds the index so an all -inf window
// still points inside the input, as PyTorch's does; v replaces the maximum when it is
// greater or NaN, as the cpu's pick does.
DEEPNODE_HD inline void maxWindow(const PoolGeometry& g, const float* x, int64_t oy, int64_t ox, float& best,
                                  int64_t& bestIndex) {
  int64_t y0 = oy * g.strideH - g.padH;
  while (y0 < 0) y0 += g.dilationH;
  int64_t yEnd = oy * g.strideH - g.padH + (g.kH - 1) * g.dilationH + 1;
  yEnd = yEnd < g.h ? yEnd : g.h;
  int64_t x0 = ox * g.strideW - g.padW;
  while (x0 < 0) x0 += g.dilationW;
  int64_t xEnd = ox * g.strideW - g.padW + (g.kW - 1) * g.dilationW + 1;
  xEnd = xEnd < g.w ? xEnd : g.w;
  best = -__builtin_inff();
  bestIndex = y0 * g.w + x0;
  for (int64_t iy = y0; iy < yEnd; iy += g.dilationH) {
    for (int64_t ix = x0; ix < xEnd; ix += g.dilationW) {
      const float v = x[iy * g.w + ix];
      if (v > best || v != v) {
        best = v;
        bestIndex = iy * g.w + ix;
      }
    }
  }
}

void maxPoolRun(const PoolGeometry g, float* out, int32_t* indices, const float* x, int64_t n) {
  forEach("max_pool2d", n, [=] DEEPNODE_HD(int64_t o) {
    const int64_t ox = o % g.oW, oy = (o / g.oW) % g.oH, plane = o / (g.oW * g.oH);
    float best;
    int64_t bestIndex;
    maxWindow(g, x + plane * g.h * g.w, oy, ox, best, bestIndex);
    out[o] = best;
    indices[o] = static_cast<int32_t>(bestIndex);
  });
}

void maxPool2d(KernelCall& call) {
  PoolGeometry g = readPoolGeometry(call);
  std::string context = describePool(g) + ", out " + shapeString({g.n, g.c, g.oH, g.oW});
  int64_t outSize = g.n * g.c * g.oH * g.oW;
  expectSizeOf(call, 0, "out", DType::Float32, outSize, context);
  expectSizeOf(call, 1, "indices", DType::Int32, outSize, context);
  expectSizeOf(call, 2, "x", DType::Float32, g.n * g.c * g.h * g.w, context);
  maxPoolRun(g, call.buffers[0].as<float>(), call.buffers[1].as<int32_t>(), call.buffers[2].as<float>(), outSize);
}

// gradX[plane, indices[o]] += gradOut[o]; an index outside its plane is skipped and raises
// the flag, reported after the kernel.
void maxUnpoolRun(float* gradX, const float* gradOut, const int32_t* indices, int64_t planeIn, int64_t planeOut,
                  int64_t n, int* bad) {
  forEach("max_pool2d_backward", n, [=] DEEPNODE_HD(int64_t o) {
    const int32_t at = indices[o];
    if (at < 0 || at >= planeIn) {
      *bad = 1;
      return;
    }
    atomicAddTo(gradX + (o / planeOut) * planeIn + at, gradOut[o]);
  });
}

void maxPool2dBackward(KernelCall& call) {
  int64_t n = call.integer("n"), c = call.integer("c"), h = call.integer("h"), w = call.integer("w");
  int64_t oH = call.integer("oH"), oW = call.integer("oW");
  std::string context = "x " + shapeString({n, c, h, w}) + ", out " + shapeString({n, c, oH, oW});
  if (n < 0 || c < 0 || h < 1 || w < 1 || oH < 1 || oW < 1) {
    call.fail("ERR_SHAPE", "sizes must be positive: " + context);
  }
  int64_t planeIn, planeOut, planes, inSize, outSize;
  bool overflow = __builtin_mul_overflow(h, w, &planeIn) || __builtin_mul_overflow(oH, oW, &planeOut) ||
                  __builtin_mul_overflow(n, c, &planes) || __builtin_mul_overflow(planes, planeIn, &inSize) ||
                  __builtin_mul_overflow(planes, planeOut, &outSize);
  if (overflow) call.fail("ERR_SHAPE", "sizes overflow 64-bit element counts: " + context);
  expectSizeOf(call, 0, "gradX", DType::Float32, inSize, context);
  expectSizeOf(call, 1, "gradOut", DType::Float32, outSize, context);
  expectSizeOf(call, 2, "indices", DType::Int32, outSize, context);
  if (outSize == 0) return;

  ErrorFlag bad;
  maxUnpoolRun(call.buffers[0].as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<int32_t>(), planeIn,
               planeOut, outSize, bad.device());
  if (bad.raised()) {
    call.fail("ERR_INDEX", "an index lies outside its h * w plane of " + std::to_string(planeIn) + ": " + context);
  }
}

// ---------------------------------------------------------------------------------------
// avg_pool2d and adaptive_avg_pool2d

struct AvgGeometry {
  int64_t n, c, h, w, kH, kW, strideH, strideW, padH, padW;
  bool ceilMode, countIncludePad;
  int64_t divisorOverride, oH, oW;
  bool adaptive;  // PyTorch's adaptive windows over [h, w] -> [oH, oW]; the rest unused
};

struct Window {
  int64_t h0, h1, w0, w1;
  double divisor;
};

std::string describeAvg(const AvgGeometry& g) {
  return "x " + shapeString({g.n, g.c, g.h, g.w}) + ", kernel " + shapeString({g.kH, g.kW}) + ", stride " +
         shapeString({g.strideH, g.strideW}) + ", padding " + shapeString({g.padH, g.padW}) +
         (g.ceilMode ? ", ceil mode" : "");
}

int64_t avgPooledSize(int64_t in, int64_t kernel, int64_t pad, int64_t stride, bool ceilMode) {
  int64_t span = in + 2 * pad - kernel;
  if (span < 0) return 0;
  int64_t out = (span + (ceilMode ? stride - 1 : 0)) / stride + 1;
  if (ceilMode && (out - 1) * stride >= in + pad) --out;
  return out;
}

bool overflows(int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t ab, abc, abcd;
  return __builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc) ||
         __builtin_mul_overflow(abc, d, &abcd);
}

AvgGeometry readAvgGeometry(const KernelCall& call) {
  AvgGeometry g{call.integer("n"),
                call.integer("c"),
                call.integer("h"),
                call.integer("w"),
                call.integer("kH"),
                call.integer("kW"),
                call.integer("strideH"),
                call.integer("strideW"),
                call.integer("padH", 0),
                call.integer("padW", 0),
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

// Reads an adaptive pool's sizes, checked as the cpu does; `context` names them in errors.
AvgGeometry readAdaptiveGeometry(const KernelCall& call, std::string& context) {
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

// The input window of output (oy, ox) and its divisor, as the cpu computes them.
DEEPNODE_HD inline Window windowAt(const AvgGeometry& g, int64_t oy, int64_t ox) {
  if (g.adaptive) {
    int64_t h0 = oy * g.h / g.oH, h1 = ((oy + 1) * g.h + g.oH - 1) / g.oH;
    int64_t w0 = ox * g.w / g.oW, w1 = ((ox + 1) * g.w + g.oW - 1) / g.oW;
    return Window{h0, h1, w0, w1, static_cast<double>((h1 - h0) * (w1 - w0))};
  }
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

// Forward: each output is its window's sum in double over the divisor. Backward: each
// output's share of the gradient is added over its window.
void avgPoolRun(const AvgGeometry g, const float* src, float* dst, int64_t n, bool backward) {
  if (backward) {
    forEach("avg_pool2d_backward", n, [=] DEEPNODE_HD(int64_t o) {
      const int64_t ox = o % g.oW, oy = (o / g.oW) % g.oH, plane = o / (g.oW * g.oH);
      const Window win = windowAt(g, oy, ox);
      const float share = static_cast<float>(static_cast<double>(src[o]) / win.divisor);
      for (int64_t iy = win.h0; iy < win.h1; ++iy)
        for (int64_t ix = win.w0; ix < win.w1; ++ix) atomicAddTo(dst + (plane * g.h + iy) * g.w + ix, share);
    });
    return;
  }
  forEach("avg_pool2d", n, [=] DEEPNODE_HD(int64_t o) {
    const int64_t ox = o % g.oW, oy = (o / g.oW) % g.oH, plane = o / (g.oW * g.oH);
    const Window win = windowAt(g, oy, ox);
    double sum = 0;
    for (int64_t iy = win.h0; iy < win.h1; ++iy)
      for (int64_t ix = win.w0; ix < win.w1; ++ix) sum += src[(plane * g.h + iy) * g.w + ix];
    dst[o] = static_cast<float>(sum / win.divisor);
  });
}

// buffers: [out, x] forward, [gradX, gradOut] backward.
void runAvgPool(KernelCall& call, const AvgGeometry& g, const std::string& context, bool backward) {
  int64_t inSize = g.n * g.c * g.h * g.w, outSize = g.n * g.c * g.oH * g.oW;
  expectSizeOf(call, 0, backward ? "gradX" : "out", DType::Float32, backward ? inSize : outSize, context);
  expectSizeOf(call, 1, backward ? "gradOut" : "x", DType::Float32, backward ? outSize : inSize, context);
  avgPoolRun(g, call.buffers[1].as<float>(), call.buffers[0].as<float>(), outSize, backward);
}

void avgPool(KernelCall& call, bool backward) {
  AvgGeometry g = readAvgGeometry(call);
  runAvgPool(call, g, describeAvg(g) + ", out " + shapeString({g.n, g.c, g.oH, g.oW}), backward);
}

void adaptivePool(KernelCall& call, bool backward) {
  std::string context;
  AvgGeometry g = readAdaptiveGeometry(call, context);
  runAvgPool(call, g, context, backward);
}

void avgPool2d(KernelCall& call) {
  avgPool(call, false);
}
void avgPool2dBackward(KernelCall& call) {
  avgPool(call, true);
}
void adaptiveAvgPool2d(KernelCall& call) {
  adaptivePool(call, false);
}
void adaptiveAvgPool2dBackward(KernelCall& call) {
  adaptivePool(call, true);
}

}  // namespace elementwise

void registerPoolKernels(KernelTable& table) {
  table["max_pool2d"] = elementwise::maxPool2d;
  table["max_pool2d_backward"] = elementwise::maxPool2dBackward;
  table["avg_pool2d"] = elementwise::avgPool2d;
  table["avg_pool2d_backward"] = elementwise::avgPool2dBackward;
  table["adaptive_avg_pool2d"] = elementwise::adaptiveAvgPool2d;
  table["adaptive_avg_pool2d_backward"] = elementwise::adaptiveAvgPool2dBackward;
}

}  // namespace deepnode::cuda
