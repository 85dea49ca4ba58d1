// avg_pool2d and adaptive_avg_pool2d, forward and backward, for NCHW float32, matching
// PyTorch's windows and divisors. Each window is summed in double; threads take whole planes.
#include <algorithm>
#include <string>

#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

struct Window {
  int64_t h0, h1, w0, w1;
  double divisor;
};

struct AvgGeometry {
  int64_t n, c, h, w, kH, kW, strideH, strideW, padH, padW;
  bool ceilMode, countIncludePad;
  int64_t divisorOverride, oH, oW;
};

std::string describe(const AvgGeometry& g) {
  return "x " + shapeString({g.n, g.c, g.h, g.w}) + ", kernel " + shapeString({g.kH, g.kW}) + ", stride " +
         shapeString({g.strideH, g.strideW}) + ", padding " + shapeString({g.padH, g.padW}) +
         (g.ceilMode ? ", ceil mode" : "");
}

int64_t outputSize(int64_t in, int64_t kernel, int64_t pad, int64_t stride, bool ceilMode) {
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
                0};
  if (g.n < 0 || g.c < 0 || g.h < 1 || g.w < 1 || g.kH < 1 || g.kW < 1 || overflows(g.n, g.c, g.h, g.w)) {
    call.fail("ERR_SHAPE", "sizes and kernel must be positive (batch and channels may be 0): " + describe(g));
  }
  if (g.strideH < 1 || g.strideW < 1 || g.padH < 0 || g.padW < 0 || g.divisorOverride < 0) {
    call.fail("ERR_VALUE", "stride must be >= 1, padding and divisorOverride >= 0: " + describe(g));
  }
  if (g.padH > g.kH / 2 || g.padW > g.kW / 2) {
    call.fail("ERR_VALUE", "padding should be at most half of the kernel size: " + describe(g));
  }
  g.oH = outputSize(g.h, g.kH, g.padH, g.strideH, g.ceilMode);
  g.oW = outputSize(g.w, g.kW, g.padW, g.strideW, g.ceilMode);
  if (g.oH < 1 || g.oW < 1) {
    call.fail("ERR_SHAPE", "output size " + shapeString({g.oH, g.oW}) + " is too small: " + describe(g));
  }
  return g;
}

Window avgWindow(const AvgGeometry& g, int64_t oy, int64_t ox) {
  int64_t h0 = oy * g.strideH - g.padH, w0 = ox * g.strideW - g.padW;
  int64_t h1 = std::min(h0 + g.kH, g.h + g.padH), w1 = std::min(w0 + g.kW, g.w + g.padW);
  double padded = static_cast<double>((h1 - h0) * (w1 - w0));
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, g.h);
  w1 = std::min(w1, g.w);
  double inside = static_cast<double>((h1 - h0) * (w1 - w0));
  double divisor =
      g.divisorOverride > 0 ? static_cast<double>(g.divisorOverride) : (g.countIncludePad ? padded : inside);
  return {h0, h1, w0, w1, divisor};
}

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

void expectSizeOf(const KernelCall& call, size_t index, const char* role, int64_t expected,
                  const std::string& context) {
  const Buffer& buf = call.buffer(index, role, DType::Float32);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + context);
  }
}

void avgPool(KernelCall& call, bool backward) {
  AvgGeometry g = readAvgGeometry(call);
  std::string context = describe(g) + ", out " + shapeString({g.n, g.c, g.oH, g.oW});
  int64_t inSize = g.n * g.c * g.h * g.w, outSize = g.n * g.c * g.oH * g.oW;
  expectSizeOf(call, 0, backward ? "gradX" : "out", backward ? inSize : outSize, context);
  expectSizeOf(call, 1, backward ? "gradOut" : "x", backward ? outSize : inSize, context);
  auto windowAt = [&](int64_t oy, int64_t ox) { return avgWindow(g, oy, ox); };
  poolPlanes(g.n * g.c, g.h, g.w, g.oH, g.oW, windowAt, call.buffers[1].as<float>(), call.buffers[0].as<float>(),
             backward);
}

void adaptivePool(KernelCall& call, bool backward) {
  int64_t n = call.integer("n"), c = call.integer("c"), h = call.integer("h"), w = call.integer("w");
  int64_t oH = call.integer("oH"), oW = call.integer("oW");
  std::string context = "x " + shapeString({n, c, h, w}) + ", out " + shapeString({n, c, oH, oW});
  if (call.integer("rank", 4) != 4) call.fail("ERR_SHAPE", "x must be [n, c, h, w]: " + context);
  if (n < 0 || c < 0 || h < 1 || w < 1 || oH < 1 || oW < 1 || overflows(n, c, h, w) || overflows(n, c, oH, oW)) {
    call.fail("ERR_SHAPE", "sizes must be positive (batch and channels may be 0): " + context);
  }
  expectSizeOf(call, 0, backward ? "gradX" : "out", backward ? n * c * h * w : n * c * oH * oW, context);
  expectSizeOf(call, 1, backward ? "gradOut" : "x", backward ? n * c * oH * oW : n * c * h * w, context);
  auto windowAt = [&](int64_t oy, int64_t ox) {
    int64_t h0 = oy * h / oH, h1 = ((oy + 1) * h + oH - 1) / oH;
    int64_t w0 = ox * w / oW, w1 = ((ox + 1) * w + oW - 1) / oW;
    return Window{h0, h1, w0, w1, static_cast<double>((h1 - h0) * (w1 - w0))};
  };
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
