// Element-wise CUDA kernels: fill and cast here, the rest of the family in the files that
// elementwise.h lists, with the cpu kernels' names, buffers, attributes and checks; and the
// host-side helpers those files share (broadcast planning, checks, the device error flag).
#include <math.h>

#include <cstdint>
#include <string>

#include "../../core/convert.h"
#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

Shape checkedShape(const KernelCall& call, const char* name) {
  Shape shape = call.shape(name);
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n))
      call.fail("ERR_SHAPE", std::string(name) + " " + shapeString(shape) + " is too large");
  }
  return shape;
}

void checkBroadcast(const KernelCall& call, const Shape& out, const Shape& in, const char* role) {
  bool ok = in.size() <= out.size();
  for (size_t i = 0; ok && i < in.size(); ++i) {
    int64_t d = in[in.size() - 1 - i];
    ok = d == 1 || d == out[out.size() - 1 - i];
  }
  if (!ok) {
    call.fail("ERR_SHAPE",
              std::string("cannot broadcast ") + role + " of shape " + shapeString(in) + " to " + shapeString(out));
  }
}

// Element strides of `in` aligned to out's dims, 0 where `in` is broadcast.
std::vector<int64_t> alignedStrides(const Shape& out, const Shape& in) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (size_t i = 0; i < in.size(); ++i) {
    size_t inDim = in.size() - 1 - i, outDim = out.size() - 1 - i;
    strides[outDim] = in[inDim] == 1 ? 0 : stride;
    stride *= in[inDim];
  }
  return strides;
}

Strides planBroadcast(const KernelCall& call, const Shape& out, const std::vector<Shape>& ins) {
  const int operands = static_cast<int>(ins.size());
  std::vector<int64_t> full[kMaxOperands];
  for (int k = 0; k < operands; ++k) full[k] = alignedStrides(out, ins[k]);
  Shape shape;
  std::vector<int64_t> strides[kMaxOperands];
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    bool merge = !shape.empty();
    for (int k = 0; merge && k < operands; ++k) merge = strides[k].back() == full[k][d] * out[d];
    if (!merge) shape.push_back(1);
    shape.back() *= out[d];
    for (int k = 0; k < operands; ++k) {
      if (!merge) strides[k].push_back(0);
      strides[k].back() = full[k][d];
    }
  }
  if (shape.size() > static_cast<size_t>(kMaxDims)) {
    call.fail("ERR_NOT_SUPPORTED", "the cuda backend broadcasts over at most " + std::to_string(kMaxDims) +
                                       " dims after merging, got " + shapeString(shape));
  }
  Strides plan;
  plan.dims = static_cast<int>(shape.size());
  plan.narrow = numel(out) < (int64_t{1} << 31);
  for (int d = 0; d < plan.dims; ++d) {
    plan.shape[d] = shape[d];
    for (int k = 0; k < operands; ++k) plan.stride[k][d] = strides[k][d];
  }
  return plan;
}

void checkSameDType(const KernelCall& call, const Buffer& x, const Buffer& y, const char* xRole, const char* yRole) {
  if (x.dtype != y.dtype) {
    call.fail("ERR_DTYPE", std::string(xRole) + " and " + yRole + " must have the same dtype, got " +
                               dtypeName(x.dtype) + " and " + dtypeName(y.dtype));
  }
}

double finiteNumber(const KernelCall& call, const char* name) {
  double v = call.number(name);
  if (!isfinite(v)) call.fail("ERR_VALUE", std::string(name) + " must be finite, got " + std::to_string(v));
  return v;
}

ErrorFlag::ErrorFlag() : scratch_(sizeof(int)) {
  fillZeroAsync(scratch_.as<int>(), sizeof(int));
}

bool ErrorFlag::raised() const {
  int value = 0;
  copyToHostNow(&value, scratch_.as<int>(), sizeof(int));
  return value != 0;
}

// ---------------------------------------------------------------------------------------
// fill

template <typename T>
void fillWith(const Buffer& out, T value) {
  T* o = out.as<T>();
  forEach("fill", out.size, [=] DEEPNODE_HD(int64_t i) { o[i] = value; });
}

// ---------------------------------------------------------------------------------------
// cast: the cpu's conversions (truncation toward zero saturated to int32, NaN to 0; bools
// store 1 for any non-zero value; int8 wraps through int32).

DEEPNODE_HD inline int32_t truncToInt32(double x) {
  if (x != x) return 0;
  if (x >= 2147483647.0) return 2147483647;
  if (x <= -2147483648.0) return -2147483647 - 1;
  return static_cast<int32_t>(x);
}

template <typename To>
struct Convert {
  template <typename From>
  DEEPNODE_HD static To apply(From x) {
    return static_cast<To>(x);
  }
};
template <>
struct Convert<uint8_t> {
  template <typename From>
  DEEPNODE_HD static uint8_t apply(From x) {
    return x != 0 ? 1 : 0;
  }
  DEEPNODE_HD static uint8_t apply(uint8_t x) { return x; }
};
template <>
struct Convert<int32_t> {
  template <typename From>
  DEEPNODE_HD static int32_t apply(From x) {
    return static_cast<int32_t>(x);
  }
  DEEPNODE_HD static int32_t apply(float x) { return truncToInt32(x); }
  DEEPNODE_HD static int32_t apply(double x) { return truncToInt32(x); }
};
template <>
struct Convert<int8_t> {
  template <typename From>
  DEEPNODE_HD static int8_t apply(From x) {
    return static_cast<int8_t>(x);
  }
  DEEPNODE_HD static int8_t apply(float x) { return wrapInt8(truncToInt32(x)); }
  DEEPNODE_HD static int8_t apply(double x) { return wrapInt8(truncToInt32(x)); }
  DEEPNODE_HD static int8_t apply(int32_t x) { return wrapInt8(x); }
  DEEPNODE_HD static int8_t wrapInt8(int32_t x) { return static_cast<int8_t>(static_cast<uint8_t>(x & 0xff)); }
};

template <typename To, typename From>
void castLoop(To* out, const From* x, int64_t n) {
  forEach("cast", n, [=] DEEPNODE_HD(int64_t i) { out[i] = Convert<To>::apply(x[i]); });
}

template <typename To>
void castFrom(const Buffer& out, const Buffer& x) {
  To* o = out.as<To>();
  switch (x.dtype) {
    case DType::Float32: return castLoop(o, x.as<float>(), x.size);
    case DType::Float64: return castLoop(o, x.as<double>(), x.size);
    case DType::Int32: return castLoop(o, x.as<int32_t>(), x.size);
    case DType::UInt8: return castLoop(o, x.as<uint8_t>(), x.size);
    case DType::Int8: return castLoop(o, x.as<int8_t>(), x.size);
  }
}

void fill(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const double value = call.number("value");
  const int64_t wrapped = jsWrapInteger(value);
  switch (out.dtype) {
    case DType::Float32: return fillWith(out, static_cast<float>(value));
    case DType::Float64: return fillWith(out, value);
    case DType::Int32: return fillWith(out, static_cast<int32_t>(static_cast<uint32_t>(wrapped)));
    case DType::UInt8: return fillWith(out, static_cast<uint8_t>(wrapped & 0xff));
    case DType::Int8: return fillWith(out, static_cast<int8_t>(static_cast<uint8_t>(wrapped & 0xff)));
  }
}

void cast(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x");
  call.expectSize(0, "out", x.size);
  switch (out.dtype) {
    case DType::Float32: return castFrom<float>(out, x);
    case DType::Float64: return castFrom<double>(out, x);
    case DType::Int32: return castFrom<int32_t>(out, x);
    case DType::UInt8: return castFrom<uint8_t>(out, x);
    case DType::Int8: return castFrom<int8_t>(out, x);
  }
}

}  // namespace elementwise

void registerElementwiseKernels(KernelTable& table) {
  table["fill"] = elementwise::fill;
  table["cast"] = elementwise::cast;
  registerUnaryKernels(table);
  registerBinaryKernels(table);
  registerCopyKernels(table);
  registerRandomKernels(table);
  registerOptimKernels(table);
  registerPoolKernels(table);
}

}  // namespace deepnode::cuda
