// Pooling on CUDA for NCHW float32 with the cpu kernels' buffers, attributes and checks
// (native/cpu/pool.cc, avgpool.cc): max_pool2d (padding reads as -inf, the first maximum
// in row-major window order wins ties, a NaN counts as the maximum, indices are flat
// h * w positions in each plane), avg_pool2d and adaptive_avg_pool2d with PyTorch's windows
// and divisors, each window summed in double. One thread per output element; the
// backward kernels add into gradX with atomicAddTo, as the cpu kernels add into it.
#include <cstdint>
#include <limits>
#include <string>

#include "../../core/args/pool.h"
#include "../launch.h"
#include "elementwise.h"
#include "reductions.h"

namespace deepnode::cuda {

namespace elementwise {

// ---------------------------------------------------------------------------------------
// max_pool2d

using args::pool::describePool;
using args::pool::expectSizeOf;
using args::pool::PoolGeometry;
using args::pool::readPoolGeometry;

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
  std::string context;
  int64_t outSize = args::pool::checkMaxPoolBuffers(call, g, context);
  maxPoolRun(g, call.buffers[0].as<float>(), call.buffers[1].as<int32_t>(), call.buffers[2].as<float>(), outSize);
}

// gradX[plane, indices[o]] += gradOut[o]; an index outside its plane is skipped (the check
// before it has reported it, or will at the next wait: checks.h).
void maxUnpoolRun(float* gradX, const float* gradOut, const int32_t* indices, int64_t planeIn, int64_t planeOut,
                  int64_t n) {
  forEach("max_pool2d_backward", n, [=] DEEPNODE_HD(int64_t o) {
    const int32_t at = indices[o];
    if (at >= 0 && at < planeIn) atomicAddTo(gradX + (o / planeOut) * planeIn + at, gradOut[o]);
  });
}

void checkPlaneIndices(const args::pool::MaxUnpool& u, const int32_t* indices, CheckFailure fail) {
  const int64_t planeIn = u.planeIn;
  red::checkEach(
      "max_pool2d_backward_check", u.outSize,
      [=] DEEPNODE_HD(int64_t o) { return indices[o] < 0 || indices[o] >= planeIn; },
      [=] DEEPNODE_HD(int64_t o) { return static_cast<long long>(indices[o]); }, std::move(fail));
}

void maxPool2dBackward(KernelCall& call) {
  const args::pool::MaxUnpool u = args::pool::readMaxUnpool(call);
  if (u.outSize == 0) return;
  const int32_t* indices = call.buffers[2].as<int32_t>();
  checkPlaneIndices(u, indices,
                    red::failureOf(call, [u](const KernelCall& op, int64_t) { args::pool::failBadIndex(op, u); }));
  maxUnpoolRun(call.buffers[0].as<float>(), call.buffers[1].as<float>(), indices, u.planeIn, u.planeOut, u.outSize);
}

// ---------------------------------------------------------------------------------------
// avg_pool2d and adaptive_avg_pool2d

using args::pool::AvgGeometry;
using args::pool::describeAvg;
using args::pool::readAdaptiveGeometry;
using args::pool::readAvgGeometry;
using args::pool::Window;

// The input window of output (oy, ox) and its divisor, as the cpu computes them.
DEEPNODE_HD inline Window windowAt(const AvgGeometry& g, int64_t oy, int64_t ox) {
  return g.adaptive ? args::pool::adaptiveWindow(g.h, g.w, g.oH, g.oW, oy, ox) : args::pool::avgWindow(g, oy, ox);
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
