// Indexing along one axis (gather, scatter_add) and the negative log-likelihood loss.
// Every index and target is checked before anything is written, so a bad index leaves
// the outputs untouched and the error names the value and the valid range.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 32 * 1024;
constexpr int64_t kScatterColumns = 64;  // scatter tasks own disjoint column blocks, so adds never race

// x viewed as [outer, dim, inner]; index, out and src as [outer, indexDim, inner].
struct IndexExtent {
  int64_t outer, dim, inner, indexDim;
  int64_t xSize() const { return outer * dim * inner; }
  int64_t indexSize() const { return outer * indexDim * inner; }
};

IndexExtent readIndexExtent(const KernelCall& call) {
  IndexExtent e{call.integer("outer"), call.integer("dim"), call.integer("inner"), call.integer("indexDim")};
  if (e.outer < 0 || e.dim < 0 || e.inner < 0 || e.indexDim < 0) {
    call.fail("ERR_SHAPE", "outer, dim, inner and indexDim must be non-negative");
  }
  int64_t a = 0, b = 0;
  if (__builtin_mul_overflow(e.outer, e.inner, &a) || __builtin_mul_overflow(a, e.dim, &b) ||
      __builtin_mul_overflow(a, e.indexDim, &b)) {
    call.fail("ERR_SHAPE", "[outer, dim, inner] is too large");
  }
  return e;
}

// Fails with ERR_INDEX on the first index outside [0, dim).
void checkIndices(const KernelCall& call, const int32_t* index, int64_t n, int64_t dim) {
  for (int64_t k = 0; k < n; ++k) {
    if (index[k] < 0 || index[k] >= dim) {
      call.fail("ERR_INDEX", "index " + std::to_string(index[k]) + " is out of bounds for dimension of size " +
                                 std::to_string(dim) + " (valid range [0, " + std::to_string(dim) + "))");
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

enum class Reduction { None, Sum, Mean };

struct NllArgs {
  int64_t n, c, inner, ignoreIndex;
  Reduction reduction;
  const int32_t* targets;
  const float* weight;  // null when no class weights were given
  int64_t count() const { return n * inner; }
  float weightOf(int32_t t) const { return weight ? weight[t] : 1.0f; }
  bool ignored(int32_t t) const { return t == ignoreIndex; }
};

// Reads and checks everything nll_loss and its backward share: sizes, reduction, targets.
NllArgs readNllArgs(const KernelCall& call) {
  NllArgs a{call.integer("n"),
            call.integer("c"),
            call.integer("inner"),
            call.integer("ignoreIndex"),
            Reduction::None,
            nullptr,
            nullptr};
  std::string reduction = call.string("reduction");
  if (reduction == "sum")
    a.reduction = Reduction::Sum;
  else if (reduction == "mean")
    a.reduction = Reduction::Mean;
  else if (reduction != "none")
    call.fail("ERR_VALUE", "unknown reduction '" + reduction + "'");
  int64_t ni = 0, total = 0;  // total: elements of [n, c, inner], checked to fit
  if (a.n < 0 || a.c < 0 || a.inner < 0 || __builtin_mul_overflow(a.n, a.inner, &ni) ||
      __builtin_mul_overflow(ni, a.c, &total)) {
    call.fail("ERR_SHAPE", "n, c and inner must be non-negative and not too large");
  }
  a.targets = call.buffer(2, "targets", DType::Int32).as<int32_t>();
  call.expectSize(2, "targets", ni);
  if (call.hasBuffer(3)) {
    a.weight = call.buffer(3, "weight", DType::Float32).as<float>();
    call.expectSize(3, "weight", a.c);
  }
  for (int64_t k = 0; k < ni; ++k) {
    int32_t t = a.targets[k];
    if (!a.ignored(t) && (t < 0 || t >= a.c)) {
      call.fail("ERR_INDEX",
                "target " + std::to_string(t) + " is out of bounds for " + std::to_string(a.c) + " classes");
    }
  }
  return a;
}

// Offset of element k's target class in [n, c, inner].
int64_t targetOffset(const NllArgs& a, int64_t k, int32_t t) {
  return (k / a.inner * a.c + t) * a.inner + k % a.inner;
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
  const Buffer& out = call.buffer(0, "out");
  const Buffer& x = call.buffer(1, "x", out.dtype);
  const Buffer& index = call.buffer(2, "index", DType::Int32);
  IndexExtent e = readIndexExtent(call);
  call.expectSize(0, "out", e.indexSize());
  call.expectSize(1, "x", e.xSize());
  call.expectSize(2, "index", e.indexSize());
  checkIndices(call, index.as<int32_t>(), index.size, e.dim);

  switch (dtypeSize(x.dtype)) {
    case 1: return gatherTyped(e, out.as<uint8_t>(), x.as<uint8_t>(), index.as<int32_t>());
    case 4: return gatherTyped(e, out.as<uint32_t>(), x.as<uint32_t>(), index.as<int32_t>());
    default: return gatherTyped(e, out.as<uint64_t>(), x.as<uint64_t>(), index.as<int32_t>());
  }
}

void scatterAdd(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  const Buffer& index = call.buffer(1, "index", DType::Int32);
  const Buffer& src = call.buffer(2, "src", out.dtype);
  if (out.dtype != DType::Float32 && out.dtype != DType::Int32) {
    call.fail("ERR_DTYPE", std::string("scatter_add supports float32 and int32, got ") + dtypeName(out.dtype));
  }
  IndexExtent e = readIndexExtent(call);
  call.expectSize(0, "out", e.xSize());
  call.expectSize(1, "index", e.indexSize());
  call.expectSize(2, "src", e.indexSize());
  checkIndices(call, index.as<int32_t>(), index.size, e.dim);

  if (out.dtype == DType::Float32) return scatterAddTyped(e, out.as<float>(), index.as<int32_t>(), src.as<float>());
  scatterAddTyped(e, out.as<int32_t>(), index.as<int32_t>(), src.as<int32_t>());
}

// out[k] = -w[t] * logProbs[t] per element for 'none' (0 where ignored); for 'mean' the sum
// is divided by the total weight of the counted elements (NaN when all are ignored).
void nllLoss(KernelCall& call) {
  const Buffer& out = call.buffer(0, "out", DType::Float32);
  const float* logProbs = call.buffer(1, "logProbs", DType::Float32).as<float>();
  NllArgs a = readNllArgs(call);
  call.expectSize(1, "logProbs", a.count() * a.c);
  call.expectSize(0, "out", a.reduction == Reduction::None ? a.count() : 1);

  float* o = out.as<float>();
  if (a.reduction == Reduction::None) {
    for (int64_t k = 0; k < a.count(); ++k) {
      int32_t t = a.targets[k];
      o[k] = a.ignored(t) ? 0.0f : -a.weightOf(t) * logProbs[targetOffset(a, k, t)];
    }
    return;
  }
  double sum = 0, total = 0;
  for (int64_t k = 0; k < a.count(); ++k) {
    int32_t t = a.targets[k];
    if (a.ignored(t)) continue;
    double w = a.weightOf(t);
    sum -= w * logProbs[targetOffset(a, k, t)];
    total += w;
  }
  o[0] = static_cast<float>(a.reduction == Reduction::Sum ? sum : sum / total);
}

// gradLogProbs is fully written: zero except at each counted target, -w[t] * gradOut
// (divided by the total weight for 'mean').
void nllLossBackward(KernelCall& call) {
  const Buffer& gradLogProbs = call.buffer(0, "gradLogProbs", DType::Float32);
  const float* gradOut = call.buffer(1, "gradOut", DType::Float32).as<float>();
  NllArgs a = readNllArgs(call);
  call.expectSize(0, "gradLogProbs", a.count() * a.c);
  call.expectSize(1, "gradOut", a.reduction == Reduction::None ? a.count() : 1);

  float* g = gradLogProbs.as<float>();
  std::fill(g, g + a.count() * a.c, 0.0f);
  double scale = a.reduction == Reduction::Mean ? 1.0 / totalWeight(a) : 1.0;
  for (int64_t k = 0; k < a.count(); ++k) {
    int32_t t = a.targets[k];
    if (a.ignored(t)) continue;
    double upstream = a.reduction == Reduction::None ? gradOut[k] : gradOut[0];
    g[targetOffset(a, k, t)] = static_cast<float>(-a.weightOf(t) * upstream * scale);
  }
}

}  // namespace deepnode::cpu
