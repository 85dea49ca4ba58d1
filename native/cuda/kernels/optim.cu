// Fused optimizer steps on CUDA (PyTorch's SGD, Adam/AdamW, RMSprop and Adagrad, the
// non-fused formulation), in place on the parameter and its state, with the cpu kernels'
// buffers, attributes, checks and float arithmetic (native/cpu/optim.cc): scalars computed
// once in double on the host, the per-element work one pass in float.
#include <math.h>

#include <cstdint>
#include <string>

#include "../../core/args/optim.h"
#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

using namespace args;

// ---------------------------------------------------------------------------------------
// SGD

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
  const SgdArgs args = readSgdArgs(call);
  const int64_t n = call.buffers[0].size;
  float* p = call.buffers[0].as<float>();
  const float* g = call.buffers[1].as<float>();
  if (args.momentum == 0) return sgdPlain(p, g, n, args.scalars);
  if (n == 0) return;
  sgdMomentum(p, g, args.momentumBuffer, n, args.scalars);
}

// ---------------------------------------------------------------------------------------
// Adam and AdamW

// The shared scalars and the step's two variants, passed together into the kernel.
struct AdamStepScalars : AdamScalars {
  bool decoupled, amsgrad;
};

void adamRun(float* param, const float* grad, float* m, float* v, float* maxV, int64_t n, AdamStepScalars s) {
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

void adamStep(KernelCall& call) {
  float* maxV = readAdamBuffers(call);
  const Buffer& param = call.buffers[0];
  AdamStepScalars s{readAdamScalars(call), call.flag("decoupledWeightDecay", false), call.flag("amsgrad", false)};
  adamRun(param.as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), call.buffers[3].as<float>(),
          maxV, param.size, s);
}

// ---------------------------------------------------------------------------------------
// RMSprop

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

void rmspropStep(KernelCall& call) {
  const RmspropArgs args = readRmspropArgs(call);
  const Buffer& param = call.buffers[0];
  rmspropRun(param.as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), args.gradAvg,
             args.momentumBuffer, param.size, args.scalars);
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
  const AdagradScalars s = readAdagradScalars(call);
  const Buffer& param = call.buffers[0];
  adagradRun(param.as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), param.size, s.clr, s.eps,
             s.weightDecay);
}

}  // namespace elementwise

void registerOptimKernels(KernelTable& table) {
  table["sgd_step"] = elementwise::sgdStep;
  table["adam_step"] = elementwise::adamStep;
  table["rmsprop_step"] = elementwise::rmspropStep;
  table["adagrad_step"] = elementwise::adagradStep;
}

}  // namespace deepnode::cuda
