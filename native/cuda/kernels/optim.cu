// Fused optimizer steps on CUDA (PyTorch's SGD, Adam/AdamW, RMSprop and Adagrad, the
// non-fused formulation), in place on the parameter and its state, with the cpu kernels'
// buffers, attributes, checks and float arithmetic (native/cpu/optim.cc): scalars computed
// once in double on the host, the per-element work one pass in float.
#include <math.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../../core/args/foreach.h"
#include "../../core/args/optim.h"
#include "../launch.h"
#include "elementwise.h"
#include "item_chunks.h"

namespace deepnode::cuda {

namespace elementwise {

using namespace args;

// ---------------------------------------------------------------------------------------
// scale_in_place (args/foreach.h): every tensor times factor[0], which stays on the device

// One launch per kItemsPerLaunch non-empty items (every one checked already, by readScale).
template <typename T>
void scaleTyped(const ScaleArgs& a) {
  const T* f = static_cast<const T*>(a.factor);
  if (!a.clip) {
    return runInChunks("scale_in_place", a.items,
                       [=] DEEPNODE_HD(const ForeachItem& item, int64_t i) { static_cast<T*>(item.data)[i] *= *f; });
  }
  // Each element takes the multiplier from the norm on the device: a division, no launch.
  const double maxNorm = a.maxNorm;
  runInChunks("scale_in_place", a.items, [=] DEEPNODE_HD(const ForeachItem& item, int64_t i) {
    static_cast<T*>(item.data)[i] *= clipFactor(*f, maxNorm);
  });
}

void scaleInPlace(KernelCall& call) {
  const ScaleArgs a = readScale(call);
  byFloatDType(a.dtype, [&](auto zero) { scaleTyped<decltype(zero)>(a); });
}

// ---------------------------------------------------------------------------------------
// SGD

void sgdStep(KernelCall& call) {
  const SgdArgs args = readSgdArgs(call);
  float* param = call.buffers[0].as<float>();
  const float* grad = call.buffers[1].as<const float>();
  float* buf = readSgdBuffers(call, args.momentum);
  const SgdScalars s = args.scalars;
  const bool momentum = args.momentum;
  forEach("sgd_step", call.buffers[0].size,
          [=] DEEPNODE_HD(int64_t i) { sgdElement(param, grad, buf, i, s, momentum); });
}

void sgdSteps(KernelCall& call) {
  const SgdArgs args = readSgdArgs(call);
  const SgdScalars s = args.scalars;
  const bool momentum = args.momentum;
  runInChunks("sgd_steps", readSgdItems(call, momentum), [=] DEEPNODE_HD(const SgdItem& item, int64_t i) {
    sgdElement(item.param, item.grad, item.buf, i, s, momentum);
  });
}

// ---------------------------------------------------------------------------------------
// Adam and AdamW

// The shared scalars and the step's two variants, passed together into the kernel.
struct AdamStepScalars : AdamScalars {
  bool decoupled, amsgrad;
};

AdamStepScalars readAdamStepScalars(const KernelCall& call) {
  return AdamStepScalars{readAdamScalars(call), call.flag("decoupledWeightDecay", false), call.flag("amsgrad", false)};
}

// One element of an Adam step (args::adamElement, the cpu's body too).
DEEPNODE_HD inline void adamElement(const AdamItem& item, int64_t i, const AdamStepScalars& s) {
  args::adamElement(item.param, item.grad, item.m, item.v, item.maxV, i, s, s.decoupled, s.amsgrad);
}

void adamStep(KernelCall& call) {
  float* maxV = readAdamBuffers(call);
  const Buffer* b = call.buffers.data();
  const AdamItem item{b[0].as<float>(), b[1].as<const float>(), b[2].as<float>(), b[3].as<float>(), maxV, b[0].size};
  const AdamStepScalars s = readAdamStepScalars(call);
  forEach("adam_step", item.size, [=] DEEPNODE_HD(int64_t i) { adamElement(item, i, s); });
}

void adamSteps(KernelCall& call) {
  const std::vector<AdamItem> items = readAdamItems(call);
  const AdamStepScalars s = readAdamStepScalars(call);
  runInChunks("adam_steps", items, [=] DEEPNODE_HD(const AdamItem& item, int64_t i) { adamElement(item, i, s); });
}

// ---------------------------------------------------------------------------------------
// RMSprop

// One element (args::rmspropElement, the cpu's body too).
DEEPNODE_HD inline void rmspropElement(const RmspropItem& item, int64_t i, const RmspropArgs& args) {
  args::rmspropElement(item.param, item.grad, item.sq, item.ga, item.buf, i, args.scalars, args.centered,
                       args.momentum);
}

void rmspropStep(KernelCall& call) {
  const RmspropArgs args = readRmspropArgs(call);
  const RmspropItem item = readRmspropItem(call, args);
  forEach("rmsprop_step", item.size, [=] DEEPNODE_HD(int64_t i) { rmspropElement(item, i, args); });
}

void rmspropSteps(KernelCall& call) {
  const RmspropArgs args = readRmspropArgs(call);
  runInChunks("rmsprop_steps", readRmspropItems(call, args),
              [=] DEEPNODE_HD(const RmspropItem& item, int64_t i) { rmspropElement(item, i, args); });
}

// ---------------------------------------------------------------------------------------
// Adagrad

void adagradStep(KernelCall& call) {
  const AdagradScalars s = readAdagradScalars(call);
  const AdagradItem item = readAdagradItem(call);
  forEach("adagrad_step", item.size,
          [=] DEEPNODE_HD(int64_t i) { adagradElement(item.param, item.grad, item.sum, i, s); });
}

void adagradSteps(KernelCall& call) {
  const AdagradScalars s = readAdagradScalars(call);
  runInChunks("adagrad_steps", readAdagradItems(call), [=] DEEPNODE_HD(const AdagradItem& item, int64_t i) {
    adagradElement(item.param, item.grad, item.sum, i, s);
  });
}

}  // namespace elementwise

void registerOptimKernels(KernelTable& table) {
  table["sgd_step"] = elementwise::sgdStep;
  table["sgd_steps"] = elementwise::sgdSteps;
  table["adam_step"] = elementwise::adamStep;
  table["adam_steps"] = elementwise::adamSteps;
  table["scale_in_place"] = elementwise::scaleInPlace;
  table["rmsprop_step"] = elementwise::rmspropStep;
  table["rmsprop_steps"] = elementwise::rmspropSteps;
  table["adagrad_step"] = elementwise::adagradStep;
  table["adagrad_steps"] = elementwise::adagradSteps;
}

}  // namespace deepnode::cuda
