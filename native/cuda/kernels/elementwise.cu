// Element-wise CUDA kernels: fill and cast here, the rest of the family in the files that
// elementwise.h lists, with the cpu kernels' names, buffers, attributes and checks; and the
// host-side helpers those files share (broadcast planning, checks, the device error flag).
#include <math.h>

#include <cstdint>
#include <string>

#include "../../core/args/cast.h"
#include "../../core/args/elementwise.h"
#include "../../core/convert.h"
#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

static_assert(kMaxOperands == args::kMaxBroadcastOperands, "Strides holds every operand of a broadcast");

Strides packStrides(const Shape& shape, const std::vector<int64_t>* strides, int operands, const Shape& out) {
  Strides plan;
  plan.dims = static_cast<int>(shape.size());
  plan.narrow = numel(out) < (int64_t{1} << 31);
  for (int d = 0; d < plan.dims; ++d) {
    plan.shape[d] = shape[d];
    for (int k = 0; k < operands; ++k) plan.stride[k][d] = strides[k][d];
  }
  return plan;
}

Strides planBroadcast(const KernelCall& call, const Shape& out, const std::vector<Shape>& ins) {
  const args::BroadcastDims dims = args::mergeBroadcastDims(out, ins);
  if (dims.shape.size() > static_cast<size_t>(kMaxDims)) {
    call.fail("ERR_NOT_SUPPORTED", "the cuda backend broadcasts over at most " + std::to_string(kMaxDims) +
                                       " dims after merging, got " + shapeString(dims.shape));
  }
  return packStrides(dims.shape, dims.strides, static_cast<int>(ins.size()), out);
}

// ---------------------------------------------------------------------------------------
// fill

template <typename T>
void fillWith(const Buffer& out, T value) {
  T* o = out.as<T>();
  forEach("fill", out.size, [=] DEEPNODE_HD(int64_t i) { o[i] = value; });
}

// ---------------------------------------------------------------------------------------
// cast: the cpu's conversions (native/core/convert.h), uint8's two modes included.

template <typename To, typename From>
void castLoop(To* out, const From* x, int64_t n) {
  forEach("cast", n, [=] DEEPNODE_HD(int64_t i) { out[i] = Convert<To>::apply(x[i]); });
}

// out = Conversion::apply(x) per element, for the uint8 modes of args/cast.h.
template <typename Conversion, typename From>
void convertLoop(uint8_t* out, const From* x, int64_t n) {
  forEach("cast", n, [=] DEEPNODE_HD(int64_t i) { out[i] = Conversion::apply(x[i]); });
}

void fill(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const double value = call.number("value");
  args::byDType(out.dtype, [&](auto tag) { fillWith(out, fillValue<decltype(tag)>(value)); });
}

void cast(KernelCall& call) {
  args::checkCastArgs(call);
  const Buffer& out = call.buffers[0];
  const Buffer& x = call.buffers[1];
  switch (args::readUint8Cast(call)) {
    case args::Uint8Cast::Wrap:
      return args::byDType(
          x.dtype, [&](auto from) { convertLoop<WrapToUint8>(out.as<uint8_t>(), x.as<decltype(from)>(), x.size); });
    case args::Uint8Cast::Bool: return convertLoop<NonzeroToBool>(out.as<uint8_t>(), x.as<uint8_t>(), x.size);
    case args::Uint8Cast::Storage: break;
  }
  args::byDType(out.dtype, [&](auto to) {
    args::byDType(x.dtype, [&](auto from) { castLoop(out.as<decltype(to)>(), x.as<decltype(from)>(), x.size); });
  });
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
