// The optimizer steps' buffers, hyperparameters and checks, shared by the cpu kernels
// (native/cpu/optim.cc) and the CUDA ones (native/cuda/kernels/optim.cu): each step's
// scalars are computed here once in double and rounded to the float the loops use, so
// both backends run the same arithmetic and reject the same calls.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "../hd.h"
#include "../kernel.h"
#include "common.h"

namespace deepnode::args {

// The step counter of Adam and Adagrad, which starts at 1.
inline int64_t optimizerStep(const KernelCall& call) {
  int64_t step = call.integer("step");
  if (step < 1) call.fail("ERR_VALUE", "step must be at least 1, got " + std::to_string(step));
  return step;
}

// Checks param (buffer `first`, 0 but in a call of many steps) and the buffers after it, named
// by `roles`: float32, then of param's size; returns param.
inline const Buffer& readStepBuffers(const KernelCall& call, std::initializer_list<const char*> roles,
                                     size_t first = 0) {
  const Buffer& param = call.buffer(first, "param", DType::Float32);
  size_t index = first + 1;
  for (const char* role : roles) call.buffer(index++, role, DType::Float32);
  index = first + 1;
  for (const char* role : roles) call.expectSize(index++, role, param.size);
  return param;
}

// An optional state buffer of param's size at `index`, or nullptr when not needed.
inline float* optionalState(const KernelCall& call, size_t index, const char* name, bool needed, int64_t size) {
  if (!needed || size == 0) return nullptr;
  if (!call.hasBuffer(index)) call.fail("ERR_ARGUMENT", std::string("this step needs a ") + name + " buffer");
  float* data = call.buffer(index, name, DType::Float32).as<float>();
  call.expectSize(index, name, size);
  return data;
}

// ---------------------------------------------------------------------------------------
// SGD: buffers [param, grad, momentumBuffer (when momentum != 0)]

// Per-element scalars of SGD, already rounded to float as the kernel uses them.
struct SgdScalars {
  float lr, momentum, dampeningComplement, weightDecay;
  bool nesterov, firstStep;
};

// One element of an SGD step, in float: weight decay into the gradient, then with momentum the
// buffer (the gradient itself on the first step) and Nesterov's look-ahead. sgd_step and
// sgd_steps, on cpu and cuda, run this one body.
DEEPNODE_HD inline void sgdElement(float* param, const float* grad, float* buf, int64_t i, const SgdScalars& s,
                                   bool momentum) {
  float d = grad[i] + s.weightDecay * param[i];
  if (momentum) {
    float b = s.firstStep ? d : s.momentum * buf[i] + s.dampeningComplement * d;
    buf[i] = b;
    d = s.nesterov ? d + s.momentum * b : b;
  }
  param[i] -= s.lr * d;
}

struct SgdArgs {
  SgdScalars scalars;
  bool momentum;  // momentum exactly 0 is the plain step, without a buffer
};

// The step's scalars from lr, momentum, dampening, weightDecay, nesterov and firstStep.
inline SgdArgs readSgdArgs(const KernelCall& call) {
  SgdArgs args{};
  SgdScalars& s = args.scalars;
  double momentum = finiteNumber(call, "momentum"), dampening = finiteNumber(call, "dampening");
  s.lr = static_cast<float>(finiteNumber(call, "lr"));
  s.momentum = static_cast<float>(momentum);
  s.dampeningComplement = static_cast<float>(1.0 - dampening);
  s.weightDecay = static_cast<float>(finiteNumber(call, "weightDecay"));
  s.nesterov = call.flag("nesterov", false);
  s.firstStep = call.flag("firstStep", false);
  args.momentum = momentum != 0;
  return args;
}

// Checks the buffers from `first` (0 but in a call of many steps); returns momentumBuffer, or
// nullptr for the plain step or an empty param.
inline float* readSgdBuffers(const KernelCall& call, bool momentum, size_t first = 0) {
  const Buffer& param = readStepBuffers(call, {"grad"}, first);
  if (!momentum || param.size == 0) return nullptr;
  if (!call.hasBuffer(first + 2)) call.fail("ERR_ARGUMENT", "momentum != 0 needs a momentumBuffer");
  float* buf = call.buffer(first + 2, "momentumBuffer", DType::Float32).as<float>();
  call.expectSize(first + 2, "momentumBuffer", param.size);
  return buf;
}

// ---------------------------------------------------------------------------------------
// Adam and AdamW: buffers [param, grad, expAvg, expAvgSq, maxExpAvgSq (amsgrad)]

// Per-element scalars of Adam: computed in double, used in float.
struct AdamScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay, decay, stepSize, sqrtBc2;
};

// One element of an Adam step, in float: (decoupled: AdamW's decay, else weight decay into
// the gradient), the moments, amsgrad's running maximum, the bias-corrected update. The cpu
// loop and the cuda kernels run this one body (the cpu's AVX clones may fuse its
// multiply-adds, which the cuda build does not: within the tests' tolerances).
DEEPNODE_HD inline void adamElement(float* param, const float* grad, float* m, float* v, float* maxV, int64_t i,
                                    const AdamScalars& s, bool decoupled, bool amsgrad) {
  float p = param[i], g = grad[i];
  if (decoupled)
    p *= s.decay;
  else
    g += s.weightDecay * p;
  float mi = s.beta1 * m[i] + s.oneMinusBeta1 * g;
  float vi = s.beta2 * v[i] + s.oneMinusBeta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  if (amsgrad) {
    vi = maxV[i] > vi ? maxV[i] : vi;
    maxV[i] = vi;
  }
  float denom = ::sqrtf(vi) / s.sqrtBc2 + s.eps;
  param[i] = p - s.stepSize * (mi / denom);
}

// Checks the buffers from `first`; returns maxExpAvgSq, or nullptr without amsgrad or for an
// empty param.
inline float* readAdamBuffers(const KernelCall& call, size_t first = 0) {
  const Buffer& param = readStepBuffers(call, {"grad", "expAvg", "expAvgSq"}, first);
  float* maxV = nullptr;
  if (call.flag("amsgrad", false) && param.size > 0) {
    if (!call.hasBuffer(first + 4)) call.fail("ERR_ARGUMENT", "amsgrad needs a maxExpAvgSq buffer");
    maxV = call.buffer(first + 4, "maxExpAvgSq", DType::Float32).as<float>();
    call.expectSize(first + 4, "maxExpAvgSq", param.size);
  }
  return maxV;
}

// The step's scalars from lr, betas, eps, weightDecay and step.
inline AdamScalars readAdamScalars(const KernelCall& call) {
  double lr = finiteNumber(call, "lr"), beta1 = finiteNumber(call, "beta1"), beta2 = finiteNumber(call, "beta2");
  double eps = finiteNumber(call, "eps"), weightDecay = finiteNumber(call, "weightDecay");
  int64_t step = optimizerStep(call);
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
    call.fail("ERR_VALUE", "betas must be in [0, 1), got (" + numberText(beta1) + ", " + numberText(beta2) + ")");
  }
  double bc1 = 1 - std::pow(beta1, static_cast<double>(step)), bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  return AdamScalars{static_cast<float>(beta1),
                     static_cast<float>(1 - beta1),
                     static_cast<float>(beta2),
                     static_cast<float>(1 - beta2),
                     static_cast<float>(eps),
                     static_cast<float>(weightDecay),
                     static_cast<float>(1 - lr * weightDecay),
                     static_cast<float>(lr / bc1),
                     static_cast<float>(std::sqrt(bc2))};
}

// ---------------------------------------------------------------------------------------
// Many steps in one call (adam_steps, sgd_steps): `count` items, each with the one-param
// kernel's buffers in its order, all under that kernel's attributes (one step count, lr ...).

// Checks `count` against the buffers (`perItem` each, from buffer `first`, and `others`
// buffers besides the items'), then every item, by readItem(its first buffer), before any is
// updated, so a bad call changes nothing. An item's error has the one-param kernel's code
// and message, after the item's index.
template <class Item, class ReadItem>
std::vector<Item> readItems(const KernelCall& call, size_t perItem, ReadItem readItem, size_t first = 0,
                            size_t others = 0) {
  const int64_t count = call.integer("count");
  if (count < 0) call.fail("ERR_VALUE", "count must be at least 0, got " + std::to_string(count));
  const size_t expected = static_cast<size_t>(count) * perItem + others;
  if (call.buffers.size() != expected) {
    const std::string more = others == 0 ? "" : " and " + std::to_string(others) + " more";
    call.fail("ERR_ARGUMENT", "count " + std::to_string(count) + " needs " + std::to_string(expected) + " buffers (" +
                                  std::to_string(perItem) + " per item" + more + "), got " +
                                  std::to_string(call.buffers.size()));
  }
  std::vector<Item> items;
  items.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    try {
      items.push_back(readItem(first + static_cast<size_t>(k) * perItem));
    } catch (const KernelError& error) {
      const std::string message = std::string(error.what()).substr(call.op.size() + 2);  // after "op: "
      call.fail(error.code, "item " + std::to_string(k) + ": " + message);
    }
  }
  return items;
}

// One adam_steps item's buffers, checked; maxV is nullptr without amsgrad or for an empty param.
struct AdamItem {
  float* param;
  const float* grad;
  float* m;
  float* v;
  float* maxV;
  int64_t size;
};

// adam_steps' items: 4 buffers each, 5 with amsgrad.
inline std::vector<AdamItem> readAdamItems(const KernelCall& call) {
  return readItems<AdamItem>(call, call.flag("amsgrad", false) ? 5 : 4, [&](size_t first) {
    float* maxV = readAdamBuffers(call, first);
    const Buffer* b = &call.buffers[first];
    return AdamItem{b[0].as<float>(), b[1].as<const float>(), b[2].as<float>(), b[3].as<float>(), maxV, b[0].size};
  });
}

// One sgd_steps item's buffers, checked; buf is nullptr for the plain step or an empty param.
struct SgdItem {
  float* param;
  const float* grad;
  float* buf;
  int64_t size;
};

// sgd_steps' items: 2 buffers each, 3 with momentum (the buffer may be null for an empty param).
inline std::vector<SgdItem> readSgdItems(const KernelCall& call, bool momentum) {
  return readItems<SgdItem>(call, momentum ? 3 : 2, [&](size_t first) {
    float* buf = readSgdBuffers(call, momentum, first);
    const Buffer* b = &call.buffers[first];
    return SgdItem{b[0].as<float>(), b[1].as<const float>(), buf, b[0].size};
  });
}

// ---------------------------------------------------------------------------------------
// RMSprop: buffers [param, grad, squareAvg, gradAvg (centered), momentumBuffer (momentum > 0)],
// 5 slots whichever are used (a slot not used may hold null); rmsprop_steps: 5 per item.

// Per-element scalars of RMSprop.
struct RmspropScalars {
  float lr, alpha, oneMinusAlpha, eps, weightDecay, momentum;
};

struct RmspropArgs {
  RmspropScalars scalars;
  bool centered, momentum;  // momentum: momentum > 0, which keeps a buffer
};

// One element of an RMSprop step, in float: weight decay into the gradient, the running mean
// square (less the squared running mean when centered), then the step, through the momentum
// buffer when there is one. rmsprop_step and rmsprop_steps, on cpu and cuda, run this one body.
DEEPNODE_HD inline void rmspropElement(float* param, const float* grad, float* sq, float* ga, float* buf, int64_t i,
                                       const RmspropScalars& s, bool centered, bool momentum) {
  float g = grad[i] + s.weightDecay * param[i];
  float v = s.alpha * sq[i] + s.oneMinusAlpha * g * g;
  sq[i] = v;
  if (centered) {
    float mean = s.alpha * ga[i] + s.oneMinusAlpha * g;
    ga[i] = mean;
    v -= mean * mean;
  }
  float avg = ::sqrtf(v) + s.eps;
  if (momentum) {
    float b = s.momentum * buf[i] + g / avg;
    buf[i] = b;
    param[i] -= s.lr * b;
  } else {
    param[i] -= s.lr * (g / avg);
  }
}

// The step's scalars from lr, alpha, eps, weightDecay, momentum and centered.
inline RmspropArgs readRmspropArgs(const KernelCall& call) {
  double alpha = finiteNumber(call, "alpha"), momentum = finiteNumber(call, "momentum");
  RmspropScalars s{static_cast<float>(finiteNumber(call, "lr")),
                   static_cast<float>(alpha),
                   static_cast<float>(1 - alpha),
                   static_cast<float>(finiteNumber(call, "eps")),
                   static_cast<float>(finiteNumber(call, "weightDecay")),
                   static_cast<float>(momentum)};
  return RmspropArgs{s, call.flag("centered", false), momentum > 0};
}

// One param's buffers, checked; ga and buf are nullptr when not used (or for an empty param).
struct RmspropItem {
  float* param;
  const float* grad;
  float* sq;
  float* ga;
  float* buf;
  int64_t size;
};

// The buffers from `first` (0 but in a call of many steps).
inline RmspropItem readRmspropItem(const KernelCall& call, const RmspropArgs& args, size_t first = 0) {
  const Buffer& param = readStepBuffers(call, {"grad", "squareAvg"}, first);
  float* ga = optionalState(call, first + 3, "gradAvg", args.centered, param.size);
  float* buf = optionalState(call, first + 4, "momentumBuffer", args.momentum, param.size);
  const Buffer* b = &call.buffers[first];
  return RmspropItem{b[0].as<float>(), b[1].as<const float>(), b[2].as<float>(), ga, buf, param.size};
}

inline std::vector<RmspropItem> readRmspropItems(const KernelCall& call, const RmspropArgs& args) {
  return readItems<RmspropItem>(call, 5, [&](size_t first) { return readRmspropItem(call, args, first); });
}

// ---------------------------------------------------------------------------------------
// Adagrad: buffers [param, grad, stateSum]; adagrad_steps: 3 per item.

struct AdagradScalars {
  float clr, eps, weightDecay;  // clr: lr decayed for this step
};

// One element of an Adagrad step, in float; adagrad_step and adagrad_steps, on cpu and cuda,
// run this one body.
DEEPNODE_HD inline void adagradElement(float* param, const float* grad, float* sum, int64_t i,
                                       const AdagradScalars& s) {
  float g = grad[i] + s.weightDecay * param[i];
  float total = sum[i] + g * g;
  sum[i] = total;
  param[i] -= s.clr * (g / (::sqrtf(total) + s.eps));
}

// The step's scalars from lr, lrDecay, eps, weightDecay and step.
inline AdagradScalars readAdagradScalars(const KernelCall& call) {
  double lr = finiteNumber(call, "lr"), lrDecay = finiteNumber(call, "lrDecay");
  int64_t step = optimizerStep(call);
  AdagradScalars s;
  s.clr = static_cast<float>(lr / (1 + static_cast<double>(step - 1) * lrDecay));
  s.eps = static_cast<float>(finiteNumber(call, "eps"));
  s.weightDecay = static_cast<float>(finiteNumber(call, "weightDecay"));
  return s;
}

// One param's buffers, checked.
struct AdagradItem {
  float* param;
  const float* grad;
  float* sum;
  int64_t size;
};

// The buffers from `first` (0 but in a call of many steps).
inline AdagradItem readAdagradItem(const KernelCall& call, size_t first = 0) {
  const Buffer& param = readStepBuffers(call, {"grad", "stateSum"}, first);
  const Buffer* b = &call.buffers[first];
  return AdagradItem{b[0].as<float>(), b[1].as<const float>(), b[2].as<float>(), param.size};
}

inline std::vector<AdagradItem> readAdagradItems(const KernelCall& call) {
  return readItems<AdagradItem>(call, 3, [&](size_t first) { return readAdagradItem(call, first); });
}

}  // namespace deepnode::args
