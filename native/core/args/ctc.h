// CTC loss's attributes and checks, read the same way by the cpu kernels and the CUDA
// kernels: the sizes of logProbs [T, N, C] and targets [N, S], the input buffers, and the
// errors for a sample whose lengths or labels are out of range (each backend finds the
// bad sample its own way).
#pragma once

#include <cstdint>
#include <string>

#include "../kernel.h"

namespace deepnode::args {

struct CtcGeometry {
  int64_t steps, batch, classes, maxTarget, blank, width;
  const float* logProbs;
  const int32_t* targets;
  const int32_t* inputLengths;
  const int32_t* targetLengths;
};

inline std::string describe(const CtcGeometry& g) {
  return "logProbs " + shapeString({g.steps, g.batch, g.classes}) + ", targets " + shapeString({g.batch, g.maxTarget});
}

inline void expectBuffer(const KernelCall& call, size_t index, const char* role, DType dtype, int64_t expected,
                         const std::string& context) {
  const Buffer& buf = call.buffer(index, role, dtype);
  if (buf.size != expected) {
    call.fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(buf.size) +
                               " elements, expected " + std::to_string(expected) + " for " + context);
  }
}

// Fails when sample n's input length is outside [1, steps] or its target length outside
// [0, maxTarget].
inline void checkSampleLengths(const KernelCall& call, const CtcGeometry& g, int64_t n, int64_t inputLength,
                               int64_t targetLength) {
  std::string at = "[" + std::to_string(n) + "]";
  if (inputLength < 1 || inputLength > g.steps) {
    call.fail("ERR_VALUE", "inputLengths" + at + " must be in [1, " + std::to_string(g.steps) + "], got " +
                               std::to_string(inputLength));
  }
  if (targetLength < 0 || targetLength > g.maxTarget) {
    call.fail("ERR_VALUE", "targetLengths" + at + " must be in [0, " + std::to_string(g.maxTarget) + "], got " +
                               std::to_string(targetLength));
  }
}

// Fails when a label of sample n is not a class or is the blank.
inline void checkSampleLabel(const KernelCall& call, const CtcGeometry& g, int64_t n, int64_t label) {
  if (label < 0 || label >= g.classes || label == g.blank) {
    call.fail("ERR_INDEX", "target " + std::to_string(label) + " of sample " + std::to_string(n) + " must be in [0, " +
                               std::to_string(g.classes) + ") and not the blank " + std::to_string(g.blank));
  }
}

// Reads sizes and checks the input buffers at `first` (logProbs, targets, inputLengths,
// targetLengths); the samples' lengths and labels are not read.
inline CtcGeometry readCtcGeometry(const KernelCall& call, size_t first) {
  CtcGeometry g{call.integer("steps"),
                call.integer("batch"),
                call.integer("classes"),
                call.integer("maxTarget"),
                call.integer("blank"),
                0,
                nullptr,
                nullptr,
                nullptr,
                nullptr};
  std::string context = describe(g);
  if (call.integer("rank", 3) != 3 || call.integer("targetRank", 2) != 2) {
    call.fail("ERR_SHAPE", "expected logProbs [T, N, C] and targets [N, S]: " + context);
  }
  if (g.steps < 1 || g.batch < 0 || g.classes < 1 || g.maxTarget < 0 || g.steps > (1 << 24) ||
      g.maxTarget > (1 << 24) || g.classes > (1 << 24) || g.batch > (1 << 24)) {
    call.fail("ERR_SHAPE", "sizes out of range: " + context);
  }
  if (g.blank < 0 || g.blank >= g.classes) {
    call.fail("ERR_VALUE", "blank must be in [0, " + std::to_string(g.classes) + "), got " + std::to_string(g.blank));
  }
  g.width = 2 * g.maxTarget + 1;
  int64_t rows, lpSize, alphaSize;
  if (__builtin_mul_overflow(g.steps, g.batch, &rows) || __builtin_mul_overflow(rows, g.classes, &lpSize) ||
      __builtin_mul_overflow(rows, g.width, &alphaSize)) {
    call.fail("ERR_SHAPE", "sizes overflow 64-bit element counts: " + context);
  }
  expectBuffer(call, first, "logProbs", DType::Float32, g.steps * g.batch * g.classes, context);
  expectBuffer(call, first + 1, "targets", DType::Int32, g.batch * g.maxTarget, context);
  expectBuffer(call, first + 2, "inputLengths", DType::Int32, g.batch, context);
  expectBuffer(call, first + 3, "targetLengths", DType::Int32, g.batch, context);
  g.logProbs = call.buffers[first].as<float>();
  g.targets = call.buffers[first + 1].as<int32_t>();
  g.inputLengths = call.buffers[first + 2].as<int32_t>();
  g.targetLengths = call.buffers[first + 3].as<int32_t>();
  return g;
}

// ctc_loss's outputs: loss [N] float32 (0) and logAlpha [N, T, 2S + 1] float64 (1).
inline void expectCtcLossOutputs(const KernelCall& call, const CtcGeometry& g) {
  std::string context = describe(g);
  expectBuffer(call, 0, "loss", DType::Float32, g.batch, context);
  expectBuffer(call, 1, "logAlpha", DType::Float64, g.batch * g.steps * g.width, context);
}

// ctc_loss_backward's other buffers: gradLogProbs [T, N, C] (0), gradLoss [N] (1), the
// forward's logAlpha (6) and loss (7).
inline void expectCtcBackwardBuffers(const KernelCall& call, const CtcGeometry& g) {
  std::string context = describe(g);
  expectBuffer(call, 0, "gradLogProbs", DType::Float32, g.steps * g.batch * g.classes, context);
  expectBuffer(call, 1, "gradLoss", DType::Float32, g.batch, context);
  expectBuffer(call, 6, "logAlpha", DType::Float64, g.batch * g.steps * g.width, context);
  expectBuffer(call, 7, "loss", DType::Float32, g.batch, context);
}

}  // namespace deepnode::args
