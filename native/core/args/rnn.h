// The recurrent kernels' attributes, buffers and checks, shared by the cpu kernel
// (native/cpu/rnn.cc) and the CUDA one (native/cuda/kernels/rnn.cu), so both accept the same
// calls and fail with the same codes and messages. Shapes and layouts: lib/backend/rnn.ts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../kernel.h"

namespace deepnode::args::rnn {

enum class Mode : int { Tanh, Relu, Lstm, Gru };

struct RnnShape {
  Mode mode;
  bool reverse;
  int64_t column, slot, steps, batch, hidden, outWidth, slots;

  int64_t gates() const { return mode == Mode::Lstm ? 4 : mode == Mode::Gru ? 3 : 1; }
  int64_t gh() const { return gates() * hidden; }
  // Workspace floats per (step, sequence): LSTM [i f g o c h], GRU [r z n hn h], RNN [h].
  int64_t ws() const { return (mode == Mode::Lstm ? 6 : mode == Mode::Gru ? 5 : 1) * hidden; }
  int64_t hOffset() const { return ws() - hidden; }
  int64_t cOffset() const { return 4 * hidden; }
  // Time index of processing step `step`.
  int64_t time(int64_t step) const { return reverse ? steps - 1 - step : step; }
};

inline Mode parseMode(const KernelCall& call) {
  std::string mode = call.string("mode");
  if (mode == "rnn_tanh") return Mode::Tanh;
  if (mode == "rnn_relu") return Mode::Relu;
  if (mode == "lstm") return Mode::Lstm;
  if (mode == "gru") return Mode::Gru;
  call.fail("ERR_VALUE", "unknown mode \"" + mode + "\" (expected rnn_tanh, rnn_relu, lstm or gru)");
}

inline RnnShape readRnnShape(const KernelCall& call) {
  RnnShape s{parseMode(call),        call.flag("reverse", false), call.integer("column"),
             call.integer("slot"),   call.integer("steps"),       call.integer("batch"),
             call.integer("hidden"), call.integer("outWidth"),    call.integer("slots")};
  if (s.steps < 0 || s.batch < 0 || s.hidden < 0 || s.slots < 0) call.fail("ERR_SHAPE", "negative size");
  if (s.slot < 0 || s.slot >= s.slots) {
    call.fail("ERR_VALUE", "slot " + std::to_string(s.slot) + " is outside [0, " + std::to_string(s.slots) + ")");
  }
  if (s.column < 0 || s.column + s.hidden > s.outWidth) {
    call.fail("ERR_VALUE", "columns [" + std::to_string(s.column) + ", " + std::to_string(s.column + s.hidden) +
                               ") do not fit an output of width " + std::to_string(s.outWidth));
  }
  return s;
}

// A float32 buffer of exactly `size` elements, or nullptr when optional and absent.
inline float* floats(const KernelCall& call, size_t index, const char* role, int64_t size, bool optional = false) {
  if (optional && !call.hasBuffer(index)) return nullptr;
  call.buffer(index, role, DType::Float32);
  call.expectSize(index, role, size);
  return call.buffers[index].as<float>();
}

// LSTM's cell state is required in lstm mode and refused in the others.
inline float* cellState(const KernelCall& call, const RnnShape& s, size_t index, const char* role, int64_t size,
                        bool optional = false) {
  bool present = call.hasBuffer(index);
  if (s.mode != Mode::Lstm && present) call.fail("ERR_VALUE", std::string(role) + " is only taken in lstm mode");
  if (s.mode == Mode::Lstm && !present && !optional)
    call.fail("ERR_VALUE", std::string(role) + " is required in lstm mode");
  return present ? floats(call, index, role, size) : nullptr;
}

// Fails unless a sequence length lies in [0, steps].
inline void checkLength(const KernelCall& call, int32_t length, int64_t steps) {
  if (length < 0 || length > steps) {
    call.fail("ERR_INDEX", "length " + std::to_string(length) + " is outside [0, " + std::to_string(steps) + "]");
  }
}

// For each time t, 1 + the last sequence still running at t: the rows a step's GEMM must
// cover, since the rows after it only carry their state. With lengths sorted longest first
// (PyTorch's packed order) that is exactly the running sequences; past the longest, none.
inline std::vector<int64_t> activeRows(const RnnShape& s, const std::vector<int32_t>& lengths) {
  std::vector<int64_t> rows(s.steps, 0);
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t t = 0; t < lengths[n]; ++t) rows[t] = n + 1;
  }
  return rows;
}

// The state before processing `step`: the initial state, or the workspace's copy of the
// state after the previous step; `ld` is its row stride. c is LSTM's only (null otherwise).
struct StateRows {
  const float* h;
  const float* c;
  int64_t ld;
};

inline StateRows previousState(const RnnShape& s, int64_t step, const float* ws, const float* h0, const float* c0) {
  if (step == 0) return {h0, c0, s.hidden};
  const float* row = ws + s.time(step - 1) * s.batch * s.ws();
  return {row + s.hOffset(), s.mode == Mode::Lstm ? row + s.cOffset() : nullptr, s.ws()};
}

// rnn_forward's buffers but the lengths: output, hN, cN?, workspace, xProj, wHh, bHh?, h0, c0?
// (hN, cN, h0 and c0 already offset to the call's slot).
struct RnnForwardBuffers {
  float *output, *hN, *cN, *ws;
  const float *xProj, *wHh, *bHh, *h0, *c0;
};

inline RnnForwardBuffers readForwardBuffers(const KernelCall& call, const RnnShape& s) {
  int64_t T = s.steps, N = s.batch, H = s.hidden, states = s.slots * N * H, slot = s.slot * N * H;
  RnnForwardBuffers a{};
  a.output = floats(call, 0, "output", T * N * s.outWidth);
  a.hN = floats(call, 1, "hN", states) + slot;
  float* cN = cellState(call, s, 2, "cN", states);
  a.cN = cN == nullptr ? nullptr : cN + slot;
  a.ws = floats(call, 3, "workspace", T * N * s.ws());
  a.xProj = floats(call, 4, "xProj", T * N * s.gh());
  a.wHh = floats(call, 5, "wHh", s.gh() * H);
  a.bHh = floats(call, 6, "bHh", s.gh(), true);
  a.h0 = floats(call, 7, "h0", states) + slot;
  const float* c0 = cellState(call, s, 8, "c0", states);
  a.c0 = c0 == nullptr ? nullptr : c0 + slot;
  return a;
}

// rnn_backward's buffers but the lengths: gradXProj, gradWHh, gradBHh?, gradH0, gradC0?,
// gradOutput?, gradHN?, gradCN?, workspace, wHh, h0, c0? (the states offset to the slot).
struct RnnBackwardBuffers {
  float *gradXProj, *gradWHh, *gradBHh, *gradH0, *gradC0;
  const float *gradOutput, *gradHN, *gradCN, *ws, *wHh, *h0, *c0;
};

inline RnnBackwardBuffers readBackwardBuffers(const KernelCall& call, const RnnShape& s) {
  int64_t T = s.steps, N = s.batch, H = s.hidden, states = s.slots * N * H, slot = s.slot * N * H;
  auto atSlot = [&](float* p) { return p == nullptr ? nullptr : p + slot; };
  RnnBackwardBuffers a{};
  a.gradXProj = floats(call, 0, "gradXProj", T * N * s.gh());
  a.gradWHh = floats(call, 1, "gradWHh", s.gh() * H);
  a.gradBHh = floats(call, 2, "gradBHh", s.gh(), true);
  a.gradH0 = atSlot(floats(call, 3, "gradH0", states));
  a.gradC0 = atSlot(cellState(call, s, 4, "gradC0", states));
  a.gradOutput = floats(call, 5, "gradOutput", T * N * s.outWidth, true);
  a.gradHN = atSlot(floats(call, 6, "gradHN", states, true));
  a.gradCN = atSlot(cellState(call, s, 7, "gradCN", states, true));
  a.ws = floats(call, 8, "workspace", T * N * s.ws());
  a.wHh = floats(call, 9, "wHh", s.gh() * H);
  a.h0 = atSlot(floats(call, 10, "h0", states));
  a.c0 = atSlot(cellState(call, s, 11, "c0", states));
  return a;
}

}  // namespace deepnode::args::rnn
