// Fused optimizer steps on CUDA (PyTorch's SGD, Adam/AdamW, RMSprop and Adagrad, the
// non-fused formulation), in place on the parameter and its state, with the cpu kernels'
// buffers, attributes, checks and float arithmetic (native/cpu/optim.cc): scalars computed
// once in double on the host, the per-element work one pass in float.
#include <math.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../../core/args/optim.h"
#include "../launch.h"
#include "elementwise.h"

namespace deepnode::cuda {

namespace elementwise {

using namespace args;

// ---------------------------------------------------------------------------------------
// Many params per launch (adam_steps, sgd_steps)

// Items per launch. A chunk's table goes by value into the launch's parameters: at most
// 24 * 48 bytes (Adam with amsgrad), well inside the 4 KiB a launch may carry.
constexpr int kItemsPerLaunch = 24;

// A chunk holds `count` non-empty items laid end to end, item k elements [end[k - 1], end[k])
// of the launch. The item holding element i: the first whose end is past it (ends increase
// strictly).
template <class Chunk>
DEEPNODE_HD inline int itemOf(const Chunk& chunk, int64_t i) {
  int low = 0, high = chunk.count - 1;
  while (low < high) {
    const int mid = (low + high) / 2;
    if (chunk.end[mid] > i)
      high = mid;
    else
      low = mid + 1;
  }
  return low;
}

// Element i of the launch as an index into its item k.
template <class Chunk>
DEEPNODE_HD inline int64_t indexInItem(const Chunk& chunk, int k, int64_t i) {
  return k == 0 ? i : i - chunk.end[k - 1];
}

// Lays the non-empty items into chunks (chunk.set(k, item) keeps item k's pointers) and runs
// each full chunk, then the rest: one launch per kItemsPerLaunch items.
template <class Chunk, class Item, class Run>
void runInChunks(const std::vector<Item>& items, Run run) {
  Chunk chunk{};
  for (const Item& item : items) {
    if (item.size == 0) continue;  // nothing to update, and its buffers may be null
    const int k = chunk.count++;
    chunk.end[k] = (k == 0 ? 0 : chunk.end[k - 1]) + item.size;
    chunk.set(k, item);
    if (chunk.count == kItemsPerLaunch) {
      run(chunk);
      chunk.count = 0;
    }
  }
  if (chunk.count > 0) run(chunk);
}

// ---------------------------------------------------------------------------------------
// SGD

// buf is nullptr without momentum (or for an empty param).
void sgdRun(const char* op, float* param, const float* grad, float* buf, int64_t n, SgdScalars s) {
  const bool momentum = buf != nullptr;
  forEach(op, n, [=] DEEPNODE_HD(int64_t i) { sgdElement(param, grad, buf, i, s, momentum); });
}

void sgdStep(KernelCall& call) {
  const SgdArgs args = readSgdArgs(call);
  float* buf = readSgdBuffers(call, args.momentum);
  sgdRun("sgd_step", call.buffers[0].as<float>(), call.buffers[1].as<const float>(), buf, call.buffers[0].size,
         args.scalars);
}

struct SgdChunk {
  int count;
  int64_t end[kItemsPerLaunch];
  float* param[kItemsPerLaunch];
  const float* grad[kItemsPerLaunch];
  float* buf[kItemsPerLaunch];  // all nullptr without momentum

  void set(int k, const SgdItem& item) {
    param[k] = item.param;
    grad[k] = item.grad;
    buf[k] = item.buf;
  }
};

// One launch over every element of the chunk's items; a lone item needs no search.
void sgdChunkRun(const SgdChunk& chunk, SgdScalars s, bool momentum) {
  if (chunk.count == 1) return sgdRun("sgd_steps", chunk.param[0], chunk.grad[0], chunk.buf[0], chunk.end[0], s);
  forEach("sgd_steps", chunk.end[chunk.count - 1], [=] DEEPNODE_HD(int64_t i) {
    const int k = itemOf(chunk, i);
    sgdElement(chunk.param[k], chunk.grad[k], chunk.buf[k], indexInItem(chunk, k, i), s, momentum);
  });
}

// Every item checked first (readSgdItems), then one launch per kItemsPerLaunch non-empty items.
void sgdSteps(KernelCall& call) {
  const SgdArgs args = readSgdArgs(call);
  const std::vector<SgdItem> items = readSgdItems(call, args.momentum);
  runInChunks<SgdChunk>(items, [&](const SgdChunk& chunk) { sgdChunkRun(chunk, args.scalars, args.momentum); });
}

// ---------------------------------------------------------------------------------------
// Adam and AdamW

// The shared scalars and the step's two variants, passed together into the kernel.
struct AdamStepScalars : AdamScalars {
  bool decoupled, amsgrad;
};

// One element of an Adam step (args::adamElement, the cpu's body too); adam_step and
// adam_steps both run it, so those two give the same bits.
DEEPNODE_HD inline void adamElement(float* param, const float* grad, float* m, float* v, float* maxV, int64_t i,
                                    const AdamStepScalars& s) {
  args::adamElement(param, grad, m, v, maxV, i, s, s.decoupled, s.amsgrad);
}

void adamRun(float* param, const float* grad, float* m, float* v, float* maxV, int64_t n, AdamStepScalars s) {
  forEach("adam_step", n, [=] DEEPNODE_HD(int64_t i) { adamElement(param, grad, m, v, maxV, i, s); });
}

void adamStep(KernelCall& call) {
  float* maxV = readAdamBuffers(call);
  const Buffer& param = call.buffers[0];
  AdamStepScalars s{readAdamScalars(call), call.flag("decoupledWeightDecay", false), call.flag("amsgrad", false)};
  adamRun(param.as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<float>(), call.buffers[3].as<float>(),
          maxV, param.size, s);
}

struct AdamChunk {
  int count;
  int64_t end[kItemsPerLaunch];
  float* param[kItemsPerLaunch];
  const float* grad[kItemsPerLaunch];
  float* m[kItemsPerLaunch];
  float* v[kItemsPerLaunch];
  float* maxV[kItemsPerLaunch];

  void set(int k, const AdamItem& item) {
    param[k] = item.param;
    grad[k] = item.grad;
    m[k] = item.m;
    v[k] = item.v;
    maxV[k] = item.maxV;
  }
};

// One launch over every element of the chunk's items; a lone item needs no search.
void adamChunkRun(const AdamChunk& chunk, AdamStepScalars s) {
  if (chunk.count == 1)
    return adamRun(chunk.param[0], chunk.grad[0], chunk.m[0], chunk.v[0], chunk.maxV[0], chunk.end[0], s);
  forEach("adam_steps", chunk.end[chunk.count - 1], [=] DEEPNODE_HD(int64_t i) {
    const int k = itemOf(chunk, i);
    const int64_t at = indexInItem(chunk, k, i);
    adamElement(chunk.param[k], chunk.grad[k], chunk.m[k], chunk.v[k], chunk.maxV[k], at, s);
  });
}

// Every item checked first (readAdamItems), then one launch per kItemsPerLaunch non-empty items.
void adamSteps(KernelCall& call) {
  const std::vector<AdamItem> items = readAdamItems(call);
  AdamStepScalars s{readAdamScalars(call), call.flag("decoupledWeightDecay", false), call.flag("amsgrad", false)};
  runInChunks<AdamChunk>(items, [&](const AdamChunk& chunk) { adamChunkRun(chunk, s); });
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
  table["sgd_steps"] = elementwise::sgdSteps;
  table["adam_step"] = elementwise::adamStep;
  table["adam_steps"] = elementwise::adamSteps;
  table["rmsprop_step"] = elementwise::rmspropStep;
  table["adagrad_step"] = elementwise::adagradStep;
}

}  // namespace deepnode::cuda
