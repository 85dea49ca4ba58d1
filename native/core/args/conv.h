// conv2d's attributes, geometry and checks, shared by the cpu kernel (native/cpu/conv.cc)
// and the cuDNN one (native/cuda/kernels/conv.cu), so both accept the same calls and fail
// with the same codes and messages.
#pragma once

#include <cstdint>
#include <string>

#include "../kernel.h"
#include "checked.h"

namespace deepnode::args::conv {

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

inline std::string describe(const ConvGeometry& g) {
  return "x " + shapeString({g.n, g.cIn, g.h, g.w}) + ", weight " +
         shapeString({g.cOut, g.groups > 0 ? g.cIn / g.groups : 0, g.kH, g.kW}) + ", stride " +
         shapeString({g.strideH, g.strideW}) + ", padding " + shapeString({g.padH, g.padW}) + ", dilation " +
         shapeString({g.dilationH, g.dilationW}) + ", groups " + std::to_string(g.groups);
}

inline void checkGeometry(const KernelCall& call, ConvGeometry& g) {
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

inline ConvGeometry readGeometry(const KernelCall& call) {
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

inline int64_t inputSize(const ConvGeometry& g) {
  return g.n * g.cIn * g.h * g.w;
}
inline int64_t weightSize(const ConvGeometry& g) {
  return g.cOut * g.colRows();
}
inline int64_t outputSize(const ConvGeometry& g) {
  return g.n * g.cOut * g.pixels();
}

inline float* expectFloat(const KernelCall& call, const ConvGeometry& g, size_t index, const char* role,
                          int64_t expected) {
  const Buffer& buf = call.buffer(index, role, DType::Float32);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + describe(g) + ", out " +
                               shapeString({g.n, g.cOut, g.oH, g.oW}));
  }
  return buf.as<float>();
}

}  // namespace deepnode::args::conv
