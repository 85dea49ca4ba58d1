// fused_attention's attributes, buffers and checks, shared by the cpu kernel
// (native/cpu/fused_attention.cc) and the CUDA one (native/cuda/kernels/attention.cu), so both
// accept the same calls and fail with the same codes and messages.
#pragma once

#include <cstdint>
#include <string>

#include "../kernel.h"
#include "../philox.h"

namespace deepnode::args::attention {

// The sizes and options of one call. query [B, L, E], key [B, S, E], value [B, S, Ev],
// keyPadding uint8 [B / heads, S] or null (non-zero: the key is padding).
struct Attention {
  int64_t heads = 1, L = 0, S = 0, E = 0, Ev = 0, B = 0;
  float scale = 1;
  bool causal = false;
  double p = 0;
  bool dropout = false;
  philox::Key key{};
  const uint8_t* padding = nullptr;
};

inline Attention readAttention(const KernelCall& call) {
  Attention a;
  a.B = call.integer("batch");
  a.heads = call.integer("heads");
  a.L = call.integer("queries");
  a.S = call.integer("keys");
  a.E = call.integer("dim");
  a.Ev = call.integer("valueDim");
  if (a.B < 0 || a.L < 0 || a.S < 0 || a.E < 0 || a.Ev < 0 || a.heads < 1 || a.B % a.heads != 0) {
    call.fail("ERR_SHAPE", "batch, queries, keys, dim and valueDim must be >= 0 and batch a multiple of heads >= 1");
  }
  a.scale = static_cast<float>(call.number("scale"));
  a.causal = call.flag("causal", false);
  a.p = call.number("dropoutP");
  if (!(a.p >= 0 && a.p < 1)) call.fail("ERR_VALUE", "dropoutP must be in [0, 1), got " + numberText(a.p));
  a.dropout = a.p > 0;
  if (a.dropout) {
    int64_t lo = call.integer("seedLo"), hi = call.integer("seedHi"), offset = call.integer("offset");
    if (lo < 0 || lo > 0xffffffffLL || hi < 0 || hi > 0xffffffffLL || offset < 0) {
      call.fail("ERR_VALUE", "seedLo and seedHi must be 32-bit unsigned integers and offset >= 0");
    }
    a.key.seed = (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo);
    a.key.offset = static_cast<uint64_t>(offset);
  }
  return a;
}

// Checks the buffers q, k, v at `first`, `first + 1`, `first + 2` and the padding after them.
inline void checkInputs(KernelCall& call, size_t first, Attention& a) {
  const char* roles[] = {"query", "key", "value"};
  const int64_t sizes[] = {a.B * a.L * a.E, a.B * a.S * a.E, a.B * a.S * a.Ev};
  for (size_t i = 0; i < 3; ++i) {
    call.buffer(first + i, roles[i], DType::Float32);
    call.expectSize(first + i, roles[i], sizes[i]);
  }
  if (call.hasBuffer(first + 3)) {
    call.buffer(first + 3, "keyPadding", DType::UInt8);
    call.expectSize(first + 3, "keyPadding", a.B / a.heads * a.S);
    a.padding = call.buffers[first + 3].as<uint8_t>();
  }
}

// fused_attention's buffers: out [B, L, Ev], then query, key, value and keyPadding?.
struct AttentionBuffers {
  float* out;
  const float *q, *k, *v;
};

inline AttentionBuffers readAttentionBuffers(KernelCall& call, Attention& a) {
  call.buffer(0, "out", DType::Float32);
  call.expectSize(0, "out", a.B * a.L * a.Ev);
  checkInputs(call, 1, a);
  return {call.buffers[0].as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(),
          call.buffers[3].as<float>()};
}

// fused_attention_backward's buffers: gradQuery, gradKey, gradValue, gradOut, then query,
// key, value and keyPadding?; `sizes` holds the first four's element counts.
struct AttentionGradBuffers {
  float *gq, *gk, *gv;
  const float *gOut, *q, *k, *v;
  int64_t sizes[4];
};

inline AttentionGradBuffers readAttentionGradBuffers(KernelCall& call, Attention& a) {
  AttentionGradBuffers g{};
  const int64_t sizes[] = {a.B * a.L * a.E, a.B * a.S * a.E, a.B * a.S * a.Ev, a.B * a.L * a.Ev};
  const char* roles[] = {"gradQuery", "gradKey", "gradValue", "gradOut"};
  for (size_t i = 0; i < 4; ++i) {
    call.buffer(i, roles[i], DType::Float32);
    call.expectSize(i, roles[i], sizes[i]);
    g.sizes[i] = sizes[i];
  }
  checkInputs(call, 4, a);
  g.gq = call.buffers[0].as<float>();
  g.gk = call.buffers[1].as<float>();
  g.gv = call.buffers[2].as<float>();
  g.gOut = call.buffers[3].as<float>();
  g.q = call.buffers[4].as<float>();
  g.k = call.buffers[5].as<float>();
  g.v = call.buffers[6].as<float>();
  return g;
}

}  // namespace deepnode::args::attention
