// Fused optimizer steps (PyTorch's SGD, Adam/AdamW, RMSprop and Adagrad, non-fused formulation), in place
// on the parameter and its state, one parameter per call or many (the *_steps kernels). Scalars are
// computed once in double; the per-element work is one vectorised pass over memory, split across threads.
#include "../core/args/optim.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/args/foreach.h"
#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 32 * 1024;

using namespace deepnode::args;

// One pass of args::sgdElement; kMomentum keeps a buffer (fixed per instance, so the loop
// vectorises).
template <bool kMomentum>
DEEPNODE_CLONES void sgdRun(float* __restrict param, const float* __restrict grad, float* __restrict buf, int64_t n,
                            SgdScalars s) {
  for (int64_t i = 0; i < n; ++i) sgdElement(param, grad, buf, i, s, kMomentum);
}

// buf is nullptr without momentum (or for an empty param).
void sgdAll(float* param, const float* grad, float* buf, int64_t n, const SgdScalars& s) {
  parallelFor(n, kGrain, [&](int64_t b, int64_t e) {
    if (buf != nullptr)
      sgdRun<true>(param + b, grad + b, buf + b, e - b, s);
    else
      sgdRun<false>(param + b, grad + b, nullptr, e - b, s);
  });
}

// One pass of args::adamElement; kDecoupled is AdamW, kAmsgrad keeps the running maximum of
// the second moment (fixed per instance, so the loop vectorises).
template <bool kDecoupled, bool kAmsgrad>
DEEPNODE_CLONES void adamRun(float* __restrict param, const float* __restrict grad, float* __restrict m,
                             float* __restrict v, float* __restrict maxV, int64_t n, AdamScalars s) {
  for (int64_t i = 0; i < n; ++i) adamElement(param, grad, m, v, maxV, i, s, kDecoupled, kAmsgrad);
}

template <bool kDecoupled>
void adamAll(bool amsgrad, float* param, const float* grad, float* m, float* v, float* maxV, int64_t n,
             const AdamScalars& s) {
  parallelFor(n, kGrain, [&](int64_t b, int64_t e) {
    if (amsgrad)
      adamRun<kDecoupled, true>(param + b, grad + b, m + b, v + b, maxV + b, e - b, s);
    else
      adamRun<kDecoupled, false>(param + b, grad + b, m + b, v + b, nullptr, e - b, s);
  });
}

// One pass of args::rmspropElement; kCentered subtracts the squared running mean of the
// gradient, kMomentum keeps a buffer (fixed per instance, so the loop vectorises).
template <bool kCentered, bool kMomentum>
DEEPNODE_CLONES void rmspropRun(float* __restrict param, const float* __restrict grad, float* __restrict sq,
                                float* __restrict ga, float* __restrict buf, int64_t n, RmspropScalars s) {
  for (int64_t i = 0; i < n; ++i) rmspropElement(param, grad, sq, ga, buf, i, s, kCentered, kMomentum);
}

template <bool kCentered>
void rmspropAll(const RmspropItem& item, const RmspropScalars& s) {
  parallelFor(item.size, kGrain, [&](int64_t b, int64_t e) {
    float* param = item.param + b;
    const float* grad = item.grad + b;
    float* ga = kCentered ? item.ga + b : nullptr;
    if (item.buf != nullptr)
      rmspropRun<kCentered, true>(param, grad, item.sq + b, ga, item.buf + b, e - b, s);
    else
      rmspropRun<kCentered, false>(param, grad, item.sq + b, ga, nullptr, e - b, s);
  });
}

void rmspropItem(const RmspropItem& item, const RmspropArgs& args) {
  if (args.centered)
    rmspropAll<true>(item, args.scalars);
  else
    rmspropAll<false>(item, args.scalars);
}

DEEPNODE_CLONES void adagradRun(float* __restrict param, const float* __restrict grad, float* __restrict sum, int64_t n,
                                AdagradScalars s) {
  for (int64_t i = 0; i < n; ++i) adagradElement(param, grad, sum, i, s);
}

void adagradItem(const AdagradItem& item, const AdagradScalars& s) {
  parallelFor(item.size, kGrain,
              [&](int64_t b, int64_t e) { adagradRun(item.param + b, item.grad + b, item.sum + b, e - b, s); });
}

template <typename T>
DEEPNODE_CLONES void scaleRun(T* __restrict x, int64_t n, T factor) {
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

template <typename T>
void scaleAll(const ScaleArgs& a) {
  const T given = *static_cast<const T*>(a.factor);
  const T factor = a.clip ? args::clipFactor(given, a.maxNorm) : given;
  const std::vector<ForeachItem>& items = a.items;
  for (const ForeachItem& item : items) {
    T* x = static_cast<T*>(item.data);
    parallelFor(item.size, kGrain, [&](int64_t b, int64_t e) { scaleRun(x + b, e - b, factor); });
  }
}

}  // namespace

void sgdStep(KernelCall& call) {
  const SgdArgs args = readSgdArgs(call);
  float* buf = readSgdBuffers(call, args.momentum);
  sgdAll(call.buffers[0].as<float>(), call.buffers[1].as<const float>(), buf, call.buffers[0].size, args.scalars);
}

// Each item runs as its own sgd_step would (the same split across threads, so the same bits).
void sgdSteps(KernelCall& call) {
  const SgdArgs args = readSgdArgs(call);
  const std::vector<SgdItem> items = readSgdItems(call, args.momentum);
  for (const SgdItem& item : items) sgdAll(item.param, item.grad, item.buf, item.size, args.scalars);
}

void adamStep(KernelCall& call) {
  float* maxV = readAdamBuffers(call);
  const bool amsgrad = call.flag("amsgrad", false), decoupled = call.flag("decoupledWeightDecay", false);
  const AdamScalars s = readAdamScalars(call);

  const Buffer& param = call.buffers[0];
  float* p = param.as<float>();
  const float* g = call.buffers[1].as<float>();
  float* m = call.buffers[2].as<float>();
  float* v = call.buffers[3].as<float>();
  if (decoupled)
    adamAll<true>(amsgrad, p, g, m, v, maxV, param.size, s);
  else
    adamAll<false>(amsgrad, p, g, m, v, maxV, param.size, s);
}

// Each item runs as its own adam_step would (the same split across threads, so the same
// bits); what the call saves is the crossing into native code and the argument reading.
void adamSteps(KernelCall& call) {
  const std::vector<AdamItem> items = readAdamItems(call);
  const bool amsgrad = call.flag("amsgrad", false), decoupled = call.flag("decoupledWeightDecay", false);
  const AdamScalars s = readAdamScalars(call);

  for (const AdamItem& item : items) {
    if (decoupled)
      adamAll<true>(amsgrad, item.param, item.grad, item.m, item.v, item.maxV, item.size, s);
    else
      adamAll<false>(amsgrad, item.param, item.grad, item.m, item.v, item.maxV, item.size, s);
  }
}

// Every item is checked first (readScale), then each is multiplied, split across threads.
void scaleInPlace(KernelCall& call) {
  const ScaleArgs a = readScale(call);
  byFloatDType(a.dtype, [&](auto zero) { scaleAll<decltype(zero)>(a); });
}

void rmspropStep(KernelCall& call) {
  const RmspropArgs args = readRmspropArgs(call);
  rmspropItem(readRmspropItem(call, args), args);
}

// Each item runs as its own rmsprop_step would (the same split across threads, so the same bits).
void rmspropSteps(KernelCall& call) {
  const RmspropArgs args = readRmspropArgs(call);
  for (const RmspropItem& item : readRmspropItems(call, args)) rmspropItem(item, args);
}

void adagradStep(KernelCall& call) {
  const AdagradScalars s = readAdagradScalars(call);
  adagradItem(readAdagradItem(call), s);
}

// Each item runs as its own adagrad_step would.
void adagradSteps(KernelCall& call) {
  const AdagradScalars s = readAdagradScalars(call);
  for (const AdagradItem& item : readAdagradItems(call)) adagradItem(item, s);
}

}  // namespace deepnode::cpu
