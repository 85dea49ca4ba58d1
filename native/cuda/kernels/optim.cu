// Fused optimizer steps on CUDA (PyTorch's SGD, Adam/AdamW, RMSprop and Adagrad, the
// non-fused formulation), in place on the parameter and its state, with the cpu kernels'
// buffers, attributes, checks and float arithmetic (native/cpu/optim.cc): scalars computed
// once in double on the host, the per-element work one pass in float.
#include <math.h>

#include <cstdint>
#include <string>

#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

// ---------------------------------------------------------------------------------------
// SGD

struct SgdScalars {
  float lr, momentum, dampeningComplement, weightDecay;
  bool nesterov, firstStep;
};

void sgdPlain(float* param, const float* grad, int64_t n, SgdScalars s) {
  forEach("sgd_step", n, [=] DEEPNODE_HD(int64_t i) { param[i] -= s.lr * (grad[i] + s.weightDecay * param[i]); });
}

void sgdMomentum(float* param, const float* grad, float* buf, int64_t n, SgdScalars s) {
  forEach("sgd_step", n, [=] DEEPNODE_HD(int64_t i) {
    float d = grad[i] + s.weightDecay * param[i];
    float b = s.firstStep ? d : s.momentum * buf[i] + s.dampeningComplement * d;
    buf[i] = b;
    d = s.nesterov ? d + s.momentum * b : b;
    param[i] -= s.lr * d;
  });
}

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
  if (momentum == 0) return sgdPlain(p, g, param.size, s);
  if (!call.hasBuffer(2) && param.size > 0) call.fail("ERR_ARGUMENT", "momentum != 0 needs a momentumBuffer");
  if (param.size == 0) return;
  float* buf = call.buffer(2, "momentumBuffer", DType::Float32).as<float>();
  call.expectSize(2, "momentumBuffer", param.size);
  sgdMomentum(p, g, buf, param.size, s);
}

// ---------------------------------------------------------------------------------------
// Adam and AdamW

struct AdamScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay, decay, stepSize, sqrtBc2;
  bool decoupled, amsgrad;
};

void adamRun(float* param, const float* grad, float* m, float* v, float* maxV, int64_t n, AdamScalars s) {
  forEach("adam_step", n, [=] DEEPNODE_HD(int64_t i) {
    float p = param[i], g = grad[i];
    if (s.decoupled)
      p *= s.decay;
    else
      g += s.weightDecay * p;
    float mi = s.beta1 * m[i] + s.oneMinusBeta1 * g;
    float vi = s.beta2 * v[i] + s.oneMinusBeta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    if (s.amsgrad) {
      vi = maxV[i] > vi ? maxV[i] : vi;
      maxV[i] = vi;
    }
    float denom = ::sqrtf(vi) / s.sqrtBc2 + s.eps;
    param[i] = p - s.stepSize * (mi / denom);
  });
}

// The step's scalars from lr, betas, eps, weightDecay and step, checked as the cpu does.
AdamScalars adamScalars(const KernelCall& call) {
  double lr = finiteNumber(call, "lr"), beta1 = finiteNumber(call, "beta1"), beta2 = finiteNumber(call, "beta2");
  double eps = finiteNumber(call, "eps"), weightDecay = finiteNumber(call, "weightDecay");
  int64_t step = call.integer("step");
  if (step < 1) call.fail("ERR_VALUE", "step must be at least 1, got " + std::to_string(step));
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
    call.fail("ERR_VALUE",
              "betas must be in [0, 1), got (" + std::to_string(beta1) + ", " + std::to_string(beta2) + ")");
  }
  double bc1 = 1 - ::pow(beta1, static_cast<double>(step)), bc2 = 1 - ::pow(beta2, static_cast<double>(step));
  return AdamScalars{static_cast<float>(beta1),
                     static_cast<float>(1 - beta1),
                     static_cast<float>(beta2),
                     static_cast<float>(1 - beta2),
                     static_cast<float>(eps),
                     static_cast<float>(weightDecay),
                     static_cast<float>(1 - lr * weightDecay),
                     static_cast<float>(lr / bc1),
                     static_cast<float>(::sqrt(bc2)),
                     call.flag("decoupledWeightDecay", false),
                     call.flag("amsgrad", false)};
}

void adamStep(KernelCall& call) {
  const Buffer& param = call.buffer(0, "param", DType::Float32);
  call.buffer(1, "grad", DType::Float32);
  call.buffer(2, "expAvg", DType::Float32);
  call.buffer(3, "expAvgSq", DType::Float32);
  call.expectSize(1, "grad", param.size);
  call.expectSize(2, "expAvg", param.size);
  call.expectSize(3, "expAvgSq", param.size);
  const bool amsgrad = call.flag("amsgrad", false);
  float* maxV = nullptr;
  if (amsgrad && param.size > 0) {
    if (!call.hasBuffer(4)) call.fail("ERR_ARGUMENT", "amsgrad needs a maxExpAvgSq buffer");
    maxV = call.buffer(4, "maxExpAvgSq", DType::Float32).as<float>();
    call.expectSize(4, "maxExpAvgSq", param.size);
  }
  AdamScalars s = adamScalars(call);
  adamRun(param.as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), call.buffers[3].as<float>(),
          maxV, param.size, s);
}

// ---------------------------------------------------------------------------------------
// RMSprop

struct RmspropScalars {
  float lr, alpha, oneMinusAlpha, eps, weightDecay, momentum;
};

// ga (centered) and buf (momentum) are nullptr when not used.
void rmspropRun(float* param, const float* grad, float* sq, float* ga, float* buf, int64_t n, RmspropScalars s) {
  forEach("rmsprop_step", n, [=] DEEPNODE_HD(int64_t i) {
    float g = grad[i] + s.weightDecay * param[i];
    float v = s.alpha * sq[i] + s.oneMinusAlpha * g * g;
    sq[i] = v;
    if (ga != nullptr) {
      float mean = s.alpha * ga[i] + s.oneMinusAlpha * g;
      ga[i] = mean;
      v -= mean * mean;
    }
    float avg = ::sqrtf(v) + s.eps;
    if (buf != nullptr) {
      float b = s.momentum * buf[i] + g / avg;
      buf[i] = b;
      param[i] -= s.lr * b;
    } else {
      param[i] -= s.lr * (g / avg);
    }
  });
}

// An optional state buffer of param's size at `index`, or nullptr when not needed.
float* optionalState(KernelCall& call, size_t index, const char* name, bool needed, int64_t size) {
  if (!needed || size == 0) return nullptr;
  if (!call.hasBuffer(index)) call.fail("ERR_ARGUMENT", std::string("this step needs a ") + name + " buffer");
  float* data = call.buffer(index, name, DType::Float32).as<float>();
  call.expectSize(index, name, size);
  return data;
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
  rmspropRun(param.as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), ga, buf, param.size, s);
}

// ---------------------------------------------------------------------------------------
// Adagrad

void adagradRun(float* param, const float* grad, float* sum, int64_t n, float clr, float eps, float weightDecay) {
  forEach("adagrad_step", n, [=] DEEPNODE_HD(int64_t i) {
    float g = grad[i] + weightDecay * param[i];
    float total = sum[i] + g * g;
    sum[i] = total;
    param[i] -= clr * (g / (::sqrtf(total) + eps));
  });
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
  adagradRun(param.as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), param.size, clr, eps,
             weightDecay);
}

}  // namespace elementwise

void registerOptimKernels(KernelTable& table) {
  table["sgd_step"] = elementwise::sgdStep;
  table["adam_step"] = elementwise::adamStep;
  table["rmsprop_step"] = elementwise::rmspropStep;
  table["adagrad_step"] = elementwise::adagradStep;
}

}  // namespace deepnode::cuda
