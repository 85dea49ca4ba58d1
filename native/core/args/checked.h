// Size arithmetic shared by the kernels' argument checks (native/core/args/*.h). Each op
// family's header keeps its helpers in its own namespace (args::pool, args::rnn, ...): they
// are inline, so two families' helpers of the same name and signature would otherwise be
// merged by the linker into one.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "../kernel.h"

namespace deepnode::args {

// Product of non-negative sizes, failing instead of overflowing.
inline int64_t checkedProduct(const KernelCall& call, std::initializer_list<int64_t> dims) {
  int64_t total = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(total, d, &total)) call.fail("ERR_SHAPE", "sizes overflow 64-bit element counts");
  }
  return total;
}

}  // namespace deepnode::args
