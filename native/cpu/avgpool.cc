// avg_pool2d and adaptive_avg_pool2d, forward and backward, for NCHW float32, matching
// PyTorch's windows and divisors. Each window is summed in double; threads take whole planes.
#include <algorithm>
#include <string>

#include "../core/args/pool.h"
#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

using args::pool::AvgGeometry;
using args::pool::describeAvg;
using args::pool::expectSizeOf;
using args::pool::Window;

// Runs the plane loop for either direction: forward sums each window of `in` into `out`;
// backward spreads each `out` element back over its window of `in`.
template <typename WindowAt>
void poolPlanes(int64_t planes, int64_t h, int64_t w, int64_t oH, int64_t oW, WindowAt windowAt, const float* src,
                float* dst, bool backward) {
  int64_t grain = std::max<int64_t>(1, 16384 / (h * w + 1));
  parallelFor(planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t oy = 0; oy < oH; ++oy) {
        for (int64_t ox = 0; ox < oW; ++ox) {
          Window win = windowAt(oy, ox);
          int64_t o = (p * oH + oy) * oW + ox;
          if (backward) {
            float share = static_cast<float>(static_cast<double>(src[o]) / win.divisor);
            for (int64_t iy = win.h0; iy < win.h1; ++iy)
              for (int64_t ix = win.w0; ix < win.w1; ++ix) dst[(p * h + iy) * w + ix] += share;
          } else {
            double sum = 0;
            for (int64_t iy = win.h0; iy < win.h1; ++iy)
              for (int64_t ix = win.w0; ix < win.w1; ++ix) sum += src[(p * h + iy) * w + ix];
            dst[o] = static_cast<float>(sum / win.divisor);
          }
        }
      }
    }
  });
}

void avgPool(KernelCall& call, bool backward) {
  AvgGeometry g = args::pool::readAvgGeometry(call);
  std::string context = describeAvg(g) + ", out " + shapeString({g.n, g.c, g.oH, g.oW});
  int64_t inSize = g.n * g.c * g.h * g.w, outSize = g.n * g.c * g.oH * g.oW;
  expectSizeOf(call, 0, backward ? "gradX" : "out", DType::Float32, backward ? inSize : outSize, context);
  expectSizeOf(call, 1, backward ? "gradOut" : "x", DType::Float32, backward ? outSize : inSize, context);
  auto windowAt = [&](int64_t oy, int64_t ox) { return args::pool::avgWindow(g, oy, ox); };
  poolPlanes(g.n * g.c, g.h, g.w, g.oH, g.oW, windowAt, call.buffers[1].as<float>(), call.buffers[0].as<float>(),
             backward);
}

void adaptivePool(KernelCall& call, bool backward) {
  std::string context;
  AvgGeometry g = args::pool::readAdaptiveGeometry(call, context);
  const int64_t n = g.n, c = g.c, h = g.h, w = g.w, oH = g.oH, oW = g.oW;
  expectSizeOf(call, 0, backward ? "gradX" : "out", DType::Float32, backward ? n * c * h * w : n * c * oH * oW,
               context);
  expectSizeOf(call, 1, backward ? "gradOut" : "x", DType::Float32, backward ? n * c * oH * oW : n * c * h * w,
               context);
  auto windowAt = [&](int64_t oy, int64_t ox) { return args::pool::adaptiveWindow(h, w, oH, oW, oy, ox); };
  poolPlanes(n * c, h, w, oH, oW, windowAt, call.buffers[1].as<float>(), call.buffers[0].as<float>(), backward);
}

}  // namespace

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

}  // namespace deepnode::cpu
