// Indexing along one axis (gather, scatter_add), the negative log-likelihood loss, and the
// range check of a loss's input (check_range).
// Every index and target is checked before anything is written, so a bad index leaves
// the outputs untouched and the error names the value and the valid range.
#include "../core/args/index.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../core/args/range.h"
#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

using args::IndexExtent;
using args::NllArgs;
using args::Reduction;

constexpr int64_t kGrain = 32 * 1024;
constexpr int64_t kScatterColumns = 64;  // scatter tasks own disjoint column blocks, so adds never race

// Fails with ERR_INDEX on the first index outside [0, dim).
void checkIndices(const KernelCall& call, const int32_t* index, int64_t n, int64_t dim) {
  for (int64_t k = 0; k < n; ++k) {
    if (index[k] < 0 || index[k] >= dim) {
      args::failIndex(call, index[k], dim);
    }
  }
}

template <typename T>
void gatherTyped(const IndexExtent& e, T* out, const T* x, const int32_t* index) {
  const int64_t rows = e.outer * e.indexDim;
  parallelFor(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, e.inner)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t o = r / e.indexDim;
      const int32_t* idx = index + r * e.inner;
      const T* xo = x + o * e.dim * e.inner;
      T* out_r = out + r * e.inner;
      for (int64_t i = 0; i < e.inner; ++i) out_r[i] = xo[idx[i] * e.inner + i];
    }
  });
}

template <typename T>
T addWrapping(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
  else
    return a + b;
}

template <typename T>
void scatterAddTyped(const IndexExtent& e, T* out, const int32_t* index, const T* src) {
  const int64_t blocks = (e.inner + kScatterColumns - 1) / kScatterColumns;
  const int64_t work = e.indexDim * std::min(e.inner, kScatterColumns);
  parallelFor(e.outer * blocks, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work)), [&](int64_t b, int64_t end) {
    for (int64_t task = b; task < end; ++task) {
      int64_t o = task / blocks, c0 = (task % blocks) * kScatterColumns, c1 = std::min(e.inner, c0 + kScatterColumns);
      T* outO = out + o * e.dim * e.inner;
      for (int64_t j = 0; j < e.indexDim; ++j) {
        int64_t row = (o * e.indexDim + j) * e.inner;
        for (int64_t i = c0; i < c1; ++i) {
          T& dst = outO[index[row + i] * e.inner + i];
          dst = addWrapping(dst, src[row + i]);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// nll_loss

// Fails with ERR_INDEX naming the first target that is neither ignored nor a class.
void checkTargets(const KernelCall& call, const NllArgs& a) {
  for (int64_t k = 0; k < a.count(); ++k) {
    if (a.badTarget(a.targets[k])) args::failTarget(call, a.targets[k], a.c);
  }
}

double totalWeight(const NllArgs& a) {
  double total = 0;
  for (int64_t k = 0; k < a.count(); ++k) {
    if (!a.ignored(a.targets[k])) total += a.weightOf(a.targets[k]);
  }
  return total;
}

}  // namespace

void gather(KernelCall& call) {
  IndexExtent e = args::readGather(call);
  const Buffer &out = call.buffers[0], &x = call.buffers[1], &index = call.buffers[2];
  checkIndices(call, index.as<int32_t>(), index.size, e.dim);

  switch (dtypeSize(x.dtype)) {
    case 1: return gatherTyped(e, out.as<uint8_t>(), x.as<uint8_t>(), index.as<int32_t>());
    case 4: return gatherTyped(e, out.as<uint32_t>(), x.as<uint32_t>(), index.as<int32_t>());
    default: return gatherTyped(e, out.as<uint64_t>(), x.as<uint64_t>(), index.as<int32_t>());
  }
}

void scatterAdd(KernelCall& call) {
  IndexExtent e = args::readScatterAdd(call);
  const Buffer &out = call.buffers[0], &index = call.buffers[1], &src = call.buffers[2];
  checkIndices(call, index.as<int32_t>(), index.size, e.dim);

  if (out.dtype == DType::Float32) return scatterAddTyped(e, out.as<float>(), index.as<int32_t>(), src.as<float>());
  scatterAddTyped(e, out.as<int32_t>(), index.as<int32_t>(), src.as<int32_t>());
}

// out[k] = -w[t] * logProbs[t] per element for 'none' (0 where ignored); for 'mean' the sum
// is divided by the total weight of the counted elements (NaN when all are ignored).
void nllLoss(KernelCall& call) {
  NllArgs a = args::readNllLoss(call, "out", "logProbs", 1, checkTargets);
  const float* logProbs = call.buffers[1].as<float>();

  float* o = call.buffers[0].as<float>();
  if (a.reduction == Reduction::None) {
    for (int64_t k = 0; k < a.count(); ++k) {
      int32_t t = a.targets[k];
      o[k] = a.ignored(t) ? 0.0f : -a.weightOf(t) * logProbs[a.targetOffset(k, t)];
    }
    return;
  }
  double sum = 0, total = 0;
  for (int64_t k = 0; k < a.count(); ++k) {
    int32_t t = a.targets[k];
    if (a.ignored(t)) continue;
    double w = a.weightOf(t);
    sum -= w * logProbs[a.targetOffset(k, t)];
    total += w;
  }
  o[0] = static_cast<float>(a.reduction == Reduction::Sum ? sum : sum / total);
}

// Fails naming the first element of x outside [low, high] (see args/range.h).
void checkRange(KernelCall& call) {
  const args::range::RangeArgs a = args::range::readRange(call);
  const Buffer& x = call.buffers[0];
  for (int64_t k = 0; k < x.size; ++k) {
    const double value = x.dtype == DType::Float32 ? x.as<float>()[k] : x.as<double>()[k];
    if (args::range::outside(value, a.low, a.high)) args::range::failRange(a, k);
  }
}

// gradLogProbs is fully written: zero except at each counted target, -w[t] * gradOut
// (divided by the total weight for 'mean').
void nllLossBackward(KernelCall& call) {
  NllArgs a = args::readNllLoss(call, "gradLogProbs", "gradOut", 0, checkTargets);
  const float* gradOut = call.buffers[1].as<float>();

  float* g = call.buffers[0].as<float>();
  std::fill(g, g + a.count() * a.c, 0.0f);
  double scale = a.reduction == Reduction::Mean ? 1.0 / totalWeight(a) : 1.0;
  for (int64_t k = 0; k < a.count(); ++k) {
    int32_t t = a.targets[k];
    if (a.ignored(t)) continue;
    double upstream = a.reduction == Reduction::None ? gradOut[k] : gradOut[0];
    g[a.targetOffset(k, t)] = static_cast<float>(-a.weightOf(t) * upstream * scale);
  }
}

}  // namespace deepnode::cpu
