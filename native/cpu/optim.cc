// Fused optimizer steps (PyTorch's SGD, Adam/AdamW, RMSprop and Adagrad, non-fused formulation), in place
// on the parameter and its state. Scalars are computed once in double; the per-element
// work is one vectorised pass over memory, split across threads.
#include "../core/args/optim.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

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

// kCentered subtracts the squared running mean of the gradient; kMomentum keeps a buffer.
template <bool kCentered, bool kMomentum>
DEEPNODE_CLONES void rmspropRun(float* __restrict param, const float* __restrict grad, float* __restrict sq,
                                float* __restrict ga, float* __restrict buf, int64_t n, RmspropScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + s.weightDecay * param[i];
    float v = s.alpha * sq[i] + s.oneMinusAlpha * g * g;
    sq[i] = v;
    if (kCentered) {
      float mean = s.alpha * ga[i] + s.oneMinusAlpha * g;
      ga[i] = mean;
      v -= mean * mean;
    }
    float avg = std::sqrt(v) + s.eps;
    if (kMomentum) {
      float b = s.momentum * buf[i] + g / avg;
      buf[i] = b;
      param[i] -= s.lr * b;
    } else {
      param[i] -= s.lr * (g / avg);
    }
  }
}

template <bool kCentered>
void rmspropAll(float* param, const float* grad, float* sq, float* ga, float* buf, int64_t n, const RmspropScalars& s) {
  parallelFor(n, kGrain, [&](int64_t b, int64_t e) {
    float* gaPart = ga == nullptr ? nullptr : ga + b;
    if (buf != nullptr)
      rmspropRun<kCentered, true>(param + b, grad + b, sq + b, gaPart, buf + b, e - b, s);
    else
      rmspropRun<kCentered, false>(param + b, grad + b, sq + b, gaPart, nullptr, e - b, s);
  });
}

DEEPNODE_CLONES void adagradRun(float* __restrict param, const float* __restrict grad, float* __restrict sum, int64_t n,
                                float clr, float eps, float weightDecay) {
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + weightDecay * param[i];
    float total = sum[i] + g * g;
    sum[i] = total;
    param[i] -= clr * (g / (std::sqrt(total) + eps));
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

void rmspropStep(KernelCall& call) {
  const RmspropArgs args = readRmspropArgs(call);
  const Buffer& param = call.buffers[0];
  float* p = param.as<float>();
  const float* g = call.buffers[1].as<float>();
  float* sq = call.buffers[2].as<float>();
  float* buf = args.momentumBuffer;
  if (args.centered)
    rmspropAll<true>(p, g, sq, args.gradAvg, buf, param.size, args.scalars);
  else
    rmspropAll<false>(p, g, sq, nullptr, buf, param.size, args.scalars);
}

void adagradStep(KernelCall& call) {
  const AdagradScalars s = readAdagradScalars(call);
  const Buffer& param = call.buffers[0];
  float* p = param.as<float>();
  const float* g = call.buffers[1].as<float>();
  float* sum = call.buffers[2].as<float>();
  parallelFor(param.size, kGrain,
              [&](int64_t b, int64_t e) { adagradRun(p + b, g + b, sum + b, e - b, s.clr, s.eps, s.weightDecay); });
}

}  // namespace deepnode::cpu
