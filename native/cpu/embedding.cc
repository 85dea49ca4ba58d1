// Embedding lookup (rows of a table picked by int32 indices) and its gradient. The
// gradient is split by ranges of table rows: each task scans every index and adds the
// ones in its range in index order, so adds never race and results do not depend on the
// thread count. Every index is checked before anything is written.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "../core/args/index.h"
#include "../core/threadpool.h"
#include "kernels.h"

namespace deepnode::cpu {

namespace {

constexpr int64_t kGrain = 32 * 1024;

using args::EmbeddingExtent;

// Reads the sizes, checks the buffers ([numEmbeddings, dim] at 0, indices at 2, rows
// [count, dim] at 1) and every index.
EmbeddingExtent readEmbedding(const KernelCall& call, size_t table, size_t rows, size_t indices) {
  EmbeddingExtent e = args::readEmbedding(call, table, rows, indices);
  const int32_t* index = call.buffers[indices].as<int32_t>();
  for (int64_t k = 0; k < e.count; ++k) {
    if (index[k] < 0 || index[k] >= e.numEmbeddings) args::failEmbeddingIndex(call, index[k], e.numEmbeddings);
  }
  return e;
}

}  // namespace

void embedding(KernelCall& call) {
  EmbeddingExtent e = readEmbedding(call, 1, 0, 2);
  float* out = call.buffers[0].as<float>();
  const float* weight = call.buffers[1].as<float>();
  const int32_t* index = call.buffers[2].as<int32_t>();
  if (e.dim == 0) return;
  parallelFor(e.count, std::max<int64_t>(1, kGrain / e.dim), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      std::memcpy(out + k * e.dim, weight + static_cast<int64_t>(index[k]) * e.dim, e.dim * sizeof(float));
    }
  });
}

void embeddingBackward(KernelCall& call) {
  EmbeddingExtent e = readEmbedding(call, 0, 1, 2);
  const int64_t paddingIdx = call.integer("paddingIdx", -1);
  float* grad = call.buffers[0].as<float>();
  const float* upstream = call.buffers[1].as<float>();
  const int32_t* index = call.buffers[2].as<int32_t>();
  if (e.dim == 0 || e.numEmbeddings == 0) return;
  const int64_t ranges = std::min<int64_t>(e.numEmbeddings, 4 * static_cast<int64_t>(maxThreads()));
  parallelFor(ranges, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t low = r * e.numEmbeddings / ranges, high = (r + 1) * e.numEmbeddings / ranges;
      for (int64_t k = 0; k < e.count; ++k) {
        const int64_t row = index[k];
        if (row < low || row >= high || row == paddingIdx) continue;
        float* g = grad + row * e.dim;
        const float* u = upstream + k * e.dim;
        for (int64_t j = 0; j < e.dim; ++j) g[j] += u[j];
      }
    }
  });
}

}  // namespace deepnode::cpu
