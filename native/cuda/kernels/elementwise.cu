// Element-wise CUDA kernels: fill (more of the family to come: casts, unary and binary
// maps with broadcasting, where, expand, permute, randomness, slices, optimizer steps and
// pooling), with the cpu kernels' names, buffers, attributes and checks.
#include <cstdint>

#include "../../core/convert.h"
#include "../kernels.h"
#include "../launch.h"

namespace deepnode::cuda {

template <typename T>
void fillWith(const Buffer& out, T value) {
  T* o = out.as<T>();
  forEach("fill", out.size, [=] DEEPNODE_HD(int64_t i) { o[i] = value; });
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

void registerElementwiseKernels(KernelTable& table) {
  table["fill"] = fill;
}

}  // namespace deepnode::cuda
