// The indexing family's attributes and checks, read the same way by the cpu kernels and the
// CUDA kernels: gather and scatter_add's [outer, dim, inner] extent, embedding's sizes,
// nll_loss's sizes, reduction and weights, and the errors for a bad index or target (each
// backend finds the first bad one its own way).
#pragma once

#include <cstdint>
#include <string>

#include "../hd.h"
#include "../kernel.h"

namespace deepnode::args {

// x viewed as [outer, dim, inner]; index, out and src as [outer, indexDim, inner].
struct IndexExtent {
  int64_t outer, dim, inner, indexDim;
  int64_t xSize() const { return outer * dim * inner; }
  int64_t indexSize() const { return outer * indexDim * inner; }
};

inline IndexExtent readIndexExtent(const KernelCall& call) {
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

// gather's buffers (out 0, x 1 of out's dtype, int32 index 2) checked against the extent;
// the indices themselves are not read.
inline IndexExtent readGather(const KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  call.buffer(1, "x", out.dtype);
  call.buffer(2, "index", DType::Int32);
  IndexExtent e = readIndexExtent(call);
  call.expectSize(0, "out", e.indexSize());
  call.expectSize(1, "x", e.xSize());
  call.expectSize(2, "index", e.indexSize());
  return e;
}

// scatter_add's buffers (out 0, float32 or int32; int32 index 1; src 2 of out's dtype)
// checked against the extent; the indices themselves are not read.
inline IndexExtent readScatterAdd(const KernelCall& call) {
  const Buffer& out = call.buffer(0, "out");
  call.buffer(1, "index", DType::Int32);
  call.buffer(2, "src", out.dtype);
  if (out.dtype != DType::Float32 && out.dtype != DType::Int32) {
    call.fail("ERR_DTYPE", std::string("scatter_add supports float32 and int32, got ") + dtypeName(out.dtype));
  }
  IndexExtent e = readIndexExtent(call);
  call.expectSize(0, "out", e.xSize());
  call.expectSize(1, "index", e.indexSize());
  call.expectSize(2, "src", e.indexSize());
  return e;
}

// The error for an index outside [0, dim).
[[noreturn]] inline void failIndex(const KernelCall& call, int64_t index, int64_t dim) {
  call.fail("ERR_INDEX", "index " + std::to_string(index) + " is out of bounds for dimension of size " +
                             std::to_string(dim) + " (valid range [0, " + std::to_string(dim) + "))");
}

struct EmbeddingExtent {
  int64_t numEmbeddings, dim, count;
};

// Reads the sizes and checks the buffers ([numEmbeddings, dim] at `table`, indices at
// `indices`, rows [count, dim] at `rows`); the indices themselves are not read.
inline EmbeddingExtent readEmbedding(const KernelCall& call, size_t table, size_t rows, size_t indices) {
  EmbeddingExtent e{call.integer("numEmbeddings"), call.integer("dim"), call.integer("count")};
  int64_t tableSize = 0, rowsSize = 0;
  if (e.numEmbeddings < 0 || e.dim < 0 || e.count < 0 || __builtin_mul_overflow(e.numEmbeddings, e.dim, &tableSize) ||
      __builtin_mul_overflow(e.count, e.dim, &rowsSize)) {
    call.fail("ERR_SHAPE", "numEmbeddings, dim and count must be non-negative and not too large");
  }
  call.buffer(table, "table", DType::Float32);
  call.buffer(rows, "rows", DType::Float32);
  call.buffer(indices, "indices", DType::Int32);
  call.expectSize(table, "table", tableSize);
  call.expectSize(rows, "rows", rowsSize);
  call.expectSize(indices, "indices", e.count);
  return e;
}

// The error for an embedding index outside [0, numEmbeddings).
[[noreturn]] inline void failEmbeddingIndex(const KernelCall& call, int64_t index, int64_t numEmbeddings) {
  call.fail("ERR_INDEX", "index " + std::to_string(index) + " is out of bounds for " + std::to_string(numEmbeddings) +
                             " embeddings");
}

enum class Reduction { None, Sum, Mean };

// nll_loss's sizes, reduction, targets [n, inner] and optional class weights [c].
struct NllArgs {
  int64_t n, c, inner, ignoreIndex;
  Reduction reduction;
  const int32_t* targets;
  const float* weight;  // null when no class weights were given
  DEEPNODE_HD int64_t count() const { return n * inner; }
  DEEPNODE_HD float weightOf(int32_t t) const { return weight ? weight[t] : 1.0f; }
  DEEPNODE_HD bool ignored(int32_t t) const { return t == ignoreIndex; }
  // Whether target t is a class and not ignored: counted in the loss.
  DEEPNODE_HD bool counted(int32_t t) const { return !ignored(t) && t >= 0 && t < c; }
  // Whether target t is neither ignored nor a class.
  DEEPNODE_HD bool badTarget(int32_t t) const { return !ignored(t) && (t < 0 || t >= c); }
  // Offset of element k's target class in [n, c, inner].
  DEEPNODE_HD int64_t targetOffset(int64_t k, int32_t t) const { return (k / inner * c + t) * inner + k % inner; }
};

inline Reduction parseReduction(const KernelCall& call) {
  std::string reduction = call.string("reduction");
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "mean") return Reduction::Mean;
  if (reduction != "none") call.fail("ERR_VALUE", "unknown reduction '" + reduction + "'");
  return Reduction::None;
}

// Reads and checks what nll_loss and its backward share: sizes, reduction, the targets
// (buffer 2) and weight (buffer 3) buffers; the targets themselves are not read.
inline NllArgs readNllArgs(const KernelCall& call) {
  NllArgs a{call.integer("n"),
            call.integer("c"),
            call.integer("inner"),
            call.integer("ignoreIndex"),
            parseReduction(call),
            nullptr,
            nullptr};
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
  return a;
}

// The error for a target that is neither ignored nor one of `classes`.
[[noreturn]] inline void failTarget(const KernelCall& call, int64_t target, int64_t classes) {
  call.fail("ERR_INDEX",
            "target " + std::to_string(target) + " is out of bounds for " + std::to_string(classes) + " classes");
}

// nll_loss (out 0, logProbs 1) or nll_loss_backward (gradLogProbs 0, gradOut 1), both
// float32: the buffer at `full` holds [n, c, inner], the other [n, inner] for 'none' and one
// value otherwise. checkTargets(call, args) fails on the first bad target, as the backend
// finds it.
template <typename CheckTargets>
NllArgs readNllLoss(const KernelCall& call, const char* role0, const char* role1, size_t full,
                    CheckTargets checkTargets) {
  const char* roles[2] = {role0, role1};
  call.buffer(0, role0, DType::Float32);
  call.buffer(1, role1, DType::Float32);
  NllArgs a = readNllArgs(call);
  const size_t other = 1 - full;
  call.expectSize(full, roles[full], a.count() * a.c);
  call.expectSize(other, roles[other], a.reduction == Reduction::None ? a.count() : 1);
  checkTargets(call, a);  // last: a deferred check must not outlive an op that failed
  return a;
}

}  // namespace deepnode::args
