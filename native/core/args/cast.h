// cast's `uint8` attribute, read the same way by the cpu and the CUDA kernels. uint8
// storage holds two dtypes, uint8 and bool, and by default the kernel sees it as bool
// (any non-zero value stored as 1). The two casts where the dtypes differ name the mode:
// "wrap" to a true uint8 (a Uint8Array's store: truncated toward zero, wrapped modulo 256,
// NaN and infinities 0) and "bool" from a true uint8 (non-zero becomes 1).
#pragma once

#include <string>

#include "../kernel.h"

namespace deepnode::args {

enum class Uint8Cast { Storage, Wrap, Bool };

// The mode, checked against the buffers' dtypes (ERR_DTYPE) and its own value (ERR_VALUE).
inline Uint8Cast readUint8Cast(const KernelCall& call) {
  if (!call.has("uint8")) return Uint8Cast::Storage;
  const std::string mode = call.string("uint8");
  const DType out = call.buffers[0].dtype, x = call.buffers[1].dtype;
  const std::string dtypes = std::string(dtypeName(x)) + " to " + dtypeName(out);
  if (mode == "wrap") {
    if (out != DType::UInt8 || x == DType::UInt8)
      call.fail("ERR_DTYPE", "uint8 'wrap' casts from another dtype to uint8, got " + dtypes);
    return Uint8Cast::Wrap;
  }
  if (mode == "bool") {
    if (out != DType::UInt8 || x != DType::UInt8)
      call.fail("ERR_DTYPE", "uint8 'bool' casts from uint8 to uint8 (bool), got " + dtypes);
    return Uint8Cast::Bool;
  }
  call.fail("ERR_VALUE", "uint8 must be 'wrap' or 'bool', got '" + mode + "'");
}

}  // namespace deepnode::args
