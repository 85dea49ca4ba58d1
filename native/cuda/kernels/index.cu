// Indexing along one axis (gather, scatter_add) and embedding lookup and gradient on CUDA,
// with the cpu kernels' buffers, attributes and checks. Every index is checked on the
// device (checks.h): with sync checks at once, the first bad one read back for the error
// before anything is written; by default the error comes at the next wait, and the kernels
// skip a bad index (a gathered element or row is 0) so no memory outside the buffers is
// touched. Scatters add with atomicAddTo (integer adds
// wrap modulo 2^32 as on the cpu).
#include <cstdint>
#include <string>

#include "../../core/args/index.h"
#include "reductions.h"

namespace deepnode::cuda {
namespace red_index {

using namespace red;
using args::EmbeddingExtent;
using args::IndexExtent;

// Fails, through fail(index), on the first index[k] outside [0, limit). (Not a template:
// nvcc allows no local lambda type in a template argument of a device lambda's function.)
void checkRange(const char* name, const int32_t* index, int64_t n, int64_t limit, CheckFailure fail) {
  checkEach(
      name, n, [=] DEEPNODE_HD(int64_t k) { return index[k] < 0 || index[k] >= limit; },
      [=] DEEPNODE_HD(int64_t k) { return static_cast<long long>(index[k]); }, std::move(fail));
}

// Fails with ERR_INDEX on the first index outside [0, dim).
void checkIndices(const KernelCall& call, const int32_t* index, int64_t n, int64_t dim) {
  checkRange("index_check", index, n, dim,
             failureOf(call, [dim](const KernelCall& op, int64_t value) { args::failIndex(op, value, dim); }));
}

DEEPNODE_HD inline bool inRange(int32_t index, int64_t limit) {
  return index >= 0 && index < limit;
}

template <typename U>
void gatherTyped(const IndexExtent& e, U* out, const U* x, const int32_t* index) {
  const int64_t dim = e.dim, inner = e.inner, rowsPerOuter = e.indexDim * e.inner;
  forEach("gather", e.indexSize(), [=] DEEPNODE_HD(int64_t k) {
    const int64_t o = k / rowsPerOuter, i = k % inner;
    out[k] = inRange(index[k], dim) ? x[(o * dim + index[k]) * inner + i] : U{};
  });
}

// out[o, index[o, j, i], i] += src[o, j, i]; U is float or, for int32, uint32_t (wrapping).
template <typename U>
void scatterAddTyped(const IndexExtent& e, U* out, const int32_t* index, const U* src) {
  const int64_t dim = e.dim, inner = e.inner, rowsPerOuter = e.indexDim * e.inner;
  forEach("scatter_add", e.indexSize(), [=] DEEPNODE_HD(int64_t k) {
    const int64_t o = k / rowsPerOuter, i = k % inner;
    if (inRange(index[k], dim)) atomicAddTo(out + (o * dim + index[k]) * inner + i, src[k]);
  });
}

void gather(KernelCall& call) {
  IndexExtent e = args::readGather(call);
  const Buffer &out = call.buffers[0], &x = call.buffers[1], &index = call.buffers[2];
  checkIndices(call, index.as<int32_t>(), index.size, e.dim);
  if (e.indexSize() == 0) return;

  switch (dtypeSize(x.dtype)) {
    case 1: return gatherTyped(e, out.as<uint8_t>(), x.as<uint8_t>(), index.as<int32_t>());
    case 4: return gatherTyped(e, out.as<uint32_t>(), x.as<uint32_t>(), index.as<int32_t>());
    default: return gatherTyped(e, out.as<unsigned long long>(), x.as<unsigned long long>(), index.as<int32_t>());
  }
}

void scatterAdd(KernelCall& call) {
  IndexExtent e = args::readScatterAdd(call);
  const Buffer &out = call.buffers[0], &index = call.buffers[1], &src = call.buffers[2];
  checkIndices(call, index.as<int32_t>(), index.size, e.dim);
  if (e.indexSize() == 0) return;

  if (out.dtype == DType::Float32) return scatterAddTyped(e, out.as<float>(), index.as<int32_t>(), src.as<float>());
  scatterAddTyped(e, out.as<unsigned int>(), index.as<int32_t>(), src.as<unsigned int>());
}

// ---------------------------------------------------------------------------------------
// embedding

// Reads the sizes, checks the buffers ([numEmbeddings, dim] at `table`, indices at
// `indices`, rows [count, dim] at `rows`) and every index.
EmbeddingExtent readEmbedding(const KernelCall& call, size_t table, size_t rows, size_t indices) {
  EmbeddingExtent e = args::readEmbedding(call, table, rows, indices);
  const int64_t count = e.numEmbeddings;
  checkRange(
      "embedding_check", call.buffers[indices].as<int32_t>(), e.count, count,
      failureOf(call, [count](const KernelCall& op, int64_t value) { args::failEmbeddingIndex(op, value, count); }));
  return e;
}

void embeddingRows(const EmbeddingExtent& e, float* out, const float* weight, const int32_t* index) {
  const int64_t dim = e.dim, rows = e.numEmbeddings;
  forEach("embedding", e.count * e.dim, [=] DEEPNODE_HD(int64_t k) {
    const int32_t row = index[k / dim];
    out[k] = inRange(row, rows) ? weight[static_cast<int64_t>(row) * dim + k % dim] : 0.0f;
  });
}

// grad[index[k]] += upstream[k] for every k whose index is not paddingIdx.
void embeddingGradient(const EmbeddingExtent& e, int64_t paddingIdx, float* grad, const float* upstream,
                       const int32_t* index) {
  const int64_t dim = e.dim, rows = e.numEmbeddings;
  forEach("embedding_backward", e.count * e.dim, [=] DEEPNODE_HD(int64_t k) {
    const int64_t row = index[k / dim];
    if (row != paddingIdx && row >= 0 && row < rows) atomicAddTo(grad + row * dim + k % dim, upstream[k]);
  });
}

void embedding(KernelCall& call) {
  EmbeddingExtent e = readEmbedding(call, 1, 0, 2);
  if (e.dim == 0 || e.count == 0) return;
  embeddingRows(e, call.buffers[0].as<float>(), call.buffers[1].as<float>(), call.buffers[2].as<int32_t>());
}

void embeddingBackward(KernelCall& call) {
  const int64_t paddingIdx = call.integer("paddingIdx", -1);  // read first: the check must be last
  EmbeddingExtent e = readEmbedding(call, 0, 1, 2);
  if (e.dim == 0 || e.numEmbeddings == 0 || e.count == 0) return;
  embeddingGradient(e, paddingIdx, call.buffers[0].as<float>(), call.buffers[1].as<float>(),
                    call.buffers[2].as<int32_t>());
}

}  // namespace red_index

void registerIndexKernels(KernelTable& table) {
  table["gather"] = red_index::gather;
  table["scatter_add"] = red_index::scatterAdd;
  table["embedding"] = red_index::embedding;
  table["embedding_backward"] = red_index::embeddingBackward;
}

}  // namespace deepnode::cuda
