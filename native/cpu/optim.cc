// Fused optimizer steps (PyTorch's SGD, Adam/AdamW, RMSprop and Adagrad, non-fused formulation), in place
// on the parameter and its state. Scalars are computed once in double; the per-element
// work is one vectorised pass over memory, split across threads.
#include <cmath>
#include <cstdint>
#include <string>

#include "../core/threadpool.h"
#include "clones.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 32 * 1024;

double finiteNumber(const KernelCall& call, const char* name) {
  double v = call.number(name);
  if (!std::isfinite(v)) call.fail("ERR_VALUE", std::string(name) + " must be finite, got " + std::to_string(v));
  return v;
}

// Per-element scalars of SGD, already rounded to float as the kernel uses them.
struct SgdScalars {
  float lr, momentum, dampeningComplement, weightDecay;
  bool nesterov, firstStep;
};

DEEPNODE_CLONES void sgdPlain(float* __restrict param, const float* __restrict grad, int64_t n, SgdScalars s) {
  for (int64_t i = 0; i < n; ++i) param[i] -= s.lr * (grad[i] + s.weightDecay * param[i]);
}

DEEPNODE_CLONES void sgdMomentum(float* __restrict param, const float* __restrict grad, float* __restrict buf,
                                 int64_t n, SgdScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    float d = grad[i] + s.weightDecay * param[i];
    float b = s.firstStep ? d : s.momentum * buf[i] + s.dampeningComplement * d;
    buf[i] = b;
    d = s.nesterov ? d + s.momentum * b : b;
    param[i] -= s.lr * d;
  }
}

// Per-element scalars of Adam: computed in double, used in float.
struct AdamScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay, decay, stepSize, sqrtBc2;
};

// One pass: (decay), moments, bias-corrected update. kDecoupled is AdamW, kAmsgrad keeps
// the running maximum of the second moment.
template <bool kDecoupled, bool kAmsgrad>
DEEPNODE_CLONES void adamRun(float* __restrict param, const float* __restrict grad, float* __restrict m,
                             float* __restrict v, float* __restrict maxV, int64_t n, AdamScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    float p = param[i], g = grad[i];
    if (kDecoupled)
      p *= s.decay;
    else
      g += s.weightDecay * p;
    float mi = s.beta1 * m[i] + s.oneMinusBeta1 * g;
    float vi = s.beta2 * v[i] + s.oneMinusBeta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    if (kAmsgrad) {
      vi = maxV[i] > vi ? maxV[i] : vi;
      maxV[i] = vi;
    }
    float denom = std::sqrt(vi) / s.sqrtBc2 + s.eps;
    param[i] = p - s.stepSize * (mi / denom);
  }
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

// Per-element scalars of RMSprop.
struct RmspropScalars {
  float lr, alpha, oneMinusAlpha, eps, weightDecay, momentum;
};

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

// An optional state buffer of param's size at `index`, or nullptr when not needed.
float* optionalState(KernelCall& call, size_t index, const char* name, bool needed, int64_t size) {
  if (!needed || size == 0) return nullptr;
  if (!call.hasBuffer(index)) call.fail("ERR_ARGUMENT", std::string("this step needs a ") + name + " buffer");
  float* data = call.buffer(index, name, DType::Float32).as<float>();
  call.expectSize(index, name, size);
  return data;
}

}  // namespace

void sgdStep(KernelCall& call) {
  const Buffer& param = call.buffer(0, "param", DType::Float32);
  const Buffer& grad = call.buffer(1, "grad", DType::Float32);
  call.expectSize(1, "grad", param.size);
  SgdScalars s{};
  double momentum = finiteNumber(call, "momentum"), dampening = finiteNumber(call, "dampening");
  s.lr = static_cast<float>(finiteNumber(call, "lr"));
  s.momentum = static_cast<float>(momentum);
  s.dampeningComplement = static_cast<float>(1.0 - dampening);
  s.weightDecay = static_cast<float>(finiteNumber(call, "weightDecay"));
  s.nesterov = call.flag("nesterov", false);
  s.firstStep = call.flag("firstStep", false);

  float* p = param.as<float>();
  const float* g = grad.as<float>();
  if (momentum == 0) {
    parallelFor(param.size, kGrain, [&](int64_t b, int64_t e) { sgdPlain(p + b, g + b, e - b, s); });
    return;
  }
  if (!call.hasBuffer(2) && param.size > 0) call.fail("ERR_ARGUMENT", "momentum != 0 needs a momentumBuffer");
  if (param.size == 0) return;
  float* buf = call.buffer(2, "momentumBuffer", DType::Float32).as<float>();
  call.expectSize(2, "momentumBuffer", param.size);
  parallelFor(param.size, kGrain, [&](int64_t b, int64_t e) { sgdMomentum(p + b, g + b, buf + b, e - b, s); });
}

void adamStep(KernelCall& call) {
  const Buffer& param = call.buffer(0, "param", DType::Float32);
  call.buffer(1, "grad", DType::Float32);
  call.buffer(2, "expAvg", DType::Float32);
  call.buffer(3, "expAvgSq", DType::Float32);
  call.expectSize(1, "grad", param.size);
  call.expectSize(2, "expAvg", param.size);
  call.expectSize(3, "expAvgSq", param.size);
  bool amsgrad = call.flag("amsgrad", false), decoupled = call.flag("decoupledWeightDecay", false);
  float* maxV = nullptr;
  if (amsgrad && param.size > 0) {
    if (!call.hasBuffer(4)) call.fail("ERR_ARGUMENT", "amsgrad needs a maxExpAvgSq buffer");
    maxV = call.buffer(4, "maxExpAvgSq", DType::Float32).as<float>();
    call.expectSize(4, "maxExpAvgSq", param.size);
  }

  double lr = finiteNumber(call, "lr"), beta1 = finiteNumber(call, "beta1"), beta2 = finiteNumber(call, "beta2");
  double eps = finiteNumber(call, "eps"), weightDecay = finiteNumber(call, "weightDecay");
  int64_t step = call.integer("step");
  if (step < 1) call.fail("ERR_VALUE", "step must be at least 1, got " + std::to_string(step));
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
    call.fail("ERR_VALUE",
              "betas must be in [0, 1), got (" + std::to_string(beta1) + ", " + std::to_string(beta2) + ")");
  }
  double bc1 = 1 - std::pow(beta1, static_cast<double>(step)), bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  AdamScalars s{static_cast<float>(beta1),
                static_cast<float>(1 - beta1),
                static_cast<float>(beta2),
                static_cast<float>(1 - beta2),
                static_cast<float>(eps),
                static_cast<float>(weightDecay),
                static_cast<float>(1 - lr * weightDecay),
                static_cast<float>(lr / bc1),
                static_cast<float>(std::sqrt(bc2))};

  float* p = param.as<float>();
  const float* g = call.buffers[1].as<float>();
  float* m = call.buffers[2].as<float>();
  float* v = call.buffers[3].as<float>();
  if (decoupled)
    adamAll<true>(amsgrad, p, g, m, v, maxV, param.size, s);
  else
    adamAll<false>(amsgrad, p, g, m, v, maxV, param.size, s);
}

void rmspropStep(KernelCall& call) {
  const Buffer& param = call.buffer(0, "param", DType::Float32);
  call.buffer(1, "grad", DType::Float32);
  call.buffer(2, "squareAvg", DType::Float32);
  call.expectSize(1, "grad", param.size);
  call.expectSize(2, "squareAvg", param.size);
  double alpha = finiteNumber(call, "alpha"), momentum = finiteNumber(call, "momentum");
  bool centered = call.flag("centered", false);
  float* ga = optionalState(call, 3, "gradAvg", centered, param.size);
  float* buf = optionalState(call, 4, "momentumBuffer", momentum > 0, param.size);
  RmspropScalars s{static_cast<float>(finiteNumber(call, "lr")),
                   static_cast<float>(alpha),
                   static_cast<float>(1 - alpha),
                   static_cast<float>(finiteNumber(call, "eps")),
                   static_cast<float>(finiteNumber(call, "weightDecay")),
                   static_cast<float>(momentum)};

  float* p = param.as<float>();
  const float* g = call.buffers[1].as<float>();
  float* sq = call.buffers[2].as<float>();
  if (centered)
    rmspropAll<true>(p, g, sq, ga, buf, param.size, s);
  else
    rmspropAll<false>(p, g, sq, nullptr, buf, param.size, s);
}

void adagradStep(KernelCall& call) {
  const Buffer& param = call.buffer(0, "param", DType::Float32);
  call.buffer(1, "grad", DType::Float32);
  call.buffer(2, "stateSum", DType::Float32);
  call.expectSize(1, "grad", param.size);
  call.expectSize(2, "stateSum", param.size);
  double lr = finiteNumber(call, "lr"), lrDecay = finiteNumber(call, "lrDecay");
  int64_t step = call.integer("step");
  if (step < 1) call.fail("ERR_VALUE", "step must be at least 1, got " + std::to_string(step));
  auto clr = static_cast<float>(lr / (1 + static_cast<double>(step - 1) * lrDecay));
  auto eps = static_cast<float>(finiteNumber(call, "eps"));
  auto weightDecay = static_cast<float>(finiteNumber(call, "weightDecay"));

  float* p = param.as<float>();
  const float* g = call.buffers[1].as<float>();
  float* sum = call.buffers[2].as<float>();
  parallelFor(param.size, kGrain,
              [&](int64_t b, int64_t e) { adagradRun(p + b, g + b, sum + b, e - b, clr, eps, weightDecay); });
}

}  // namespace deepnode::cpu
