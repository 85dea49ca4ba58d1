// matmul's attributes and checks, shared by the cpu kernel (native/cpu/matmul.cc) and the
// cuBLAS one (native/cuda/kernels/matmul.cu), so both fail with the same codes and messages.
#pragma once

#include <cstdint>
#include <string>

#include "../kernel.h"
#include "checked.h"

namespace deepnode::args::matmul {

struct MatmulShape {
  int64_t batch, batchA, batchB, m, n, k;
  bool transA, transB;
};

inline std::string describe(const MatmulShape& s) {
  Shape a = s.transA ? Shape{s.batchA, s.k, s.m} : Shape{s.batchA, s.m, s.k};
  Shape b = s.transB ? Shape{s.batchB, s.n, s.k} : Shape{s.batchB, s.k, s.n};
  return "a " + shapeString(a) + (s.transA ? " (transposed)" : "") + " by b " + shapeString(b) +
         (s.transB ? " (transposed)" : "") + " into out " + shapeString({s.batch, s.m, s.n}) +
         ", inner dimensions k = " + std::to_string(s.k);
}

inline MatmulShape readShape(const KernelCall& call) {
  MatmulShape s{call.integer("batch", 1),   call.integer("batchA", 1), call.integer("batchB", 1),
                call.integer("m"),          call.integer("n"),         call.integer("k"),
                call.flag("transA", false), call.flag("transB", false)};
  if (s.batch < 0 || s.m < 0 || s.n < 0 || s.k < 0) call.fail("ERR_SHAPE", "negative size in " + describe(s));
  bool batchesOk = (s.batchA == 1 || s.batchA == s.batch) && (s.batchB == 1 || s.batchB == s.batch);
  if (!batchesOk) {
    call.fail("ERR_SHAPE", "batchA and batchB must be 1 or batch (" + std::to_string(s.batch) + ") in " + describe(s));
  }
  return s;
}

// Checks one operand's buffer against its shape; the message names both operands and k.
inline void expectOperand(const KernelCall& call, const MatmulShape& s, size_t index, const char* role,
                          int64_t expected) {
  const Buffer& buf = call.buffer(index, role, DType::Float32);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + describe(s));
  }
}

}  // namespace deepnode::args::matmul
