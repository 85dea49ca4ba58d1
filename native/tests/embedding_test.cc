// Standalone checks of embedding.cc (lookup and gradient) against naive loops, with
// repeated indices, a padding row and many more indices than rows, and its error paths.
// Build: g++ -O3 -std=c++17 -Inative native/tests/embedding_test.cc native/core/{threadpool,kernel,
//        cpu_features}.cc native/cpu/embedding.cc -lpthread
#include <cstdlib>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

std::vector<std::pair<std::string, AttrValue>> extent(int64_t rows, int64_t dim, int64_t count, int64_t padding) {
  return {{"numEmbeddings", num(rows)}, {"dim", num(dim)}, {"count", num(count)}, {"paddingIdx", num(padding)}};
}

void testOnce(int64_t rows, int64_t dim, int64_t count, int64_t padding) {
  std::vector<float> table = randomFloats(rows * dim), upstream = randomFloats(count * dim);
  std::vector<float> grad = randomFloats(rows * dim), out(count * dim);
  std::vector<int32_t> index = randomInts(count, 0, static_cast<int>(rows - 1));
  std::vector<double> wantOut(out.size()), wantGrad(grad.begin(), grad.end());
  for (int64_t k = 0; k < count; ++k) {
    for (int64_t j = 0; j < dim; ++j) {
      wantOut[k * dim + j] = table[index[k] * dim + j];
      if (index[k] != padding) wantGrad[index[k] * dim + j] += upstream[k * dim + j];
    }
  }
  std::string tag = std::to_string(rows) + "x" + std::to_string(dim) + " by " + std::to_string(count) + " padding " +
                    std::to_string(padding);
  KernelCall f = makeCall("embedding", {buf(out), buf(table), buf(index)}, extent(rows, dim, count, -1));
  cpu::embedding(f);
  allClose(out, wantOut, 0, 0, "embedding " + tag);
  KernelCall b =
      makeCall("embedding_backward", {buf(grad), buf(upstream), buf(index)}, extent(rows, dim, count, padding));
  cpu::embeddingBackward(b);
  // Float adds in index order, as PyTorch: the error grows with the repeats of a row.
  allClose(grad, wantGrad, 1e-5, 2e-7 * static_cast<double>(count) / rows + 1e-5, "embedding_backward " + tag);
}

void testErrors() {
  std::vector<float> table(6), out(4, 7.0f);
  std::vector<int32_t> index = {1, 3};
  KernelCall bad = makeCall("embedding", {buf(out), buf(table), buf(index)}, extent(3, 2, 2, -1));
  check(codeOf(cpu::embedding, bad) == "ERR_INDEX", "embedding: an index out of range is ERR_INDEX");
  check(out[0] == 7.0f && out[3] == 7.0f, "embedding: nothing is written before the error");
  KernelCall shortTable = makeCall("embedding", {buf(out), buf(table), buf(index)}, extent(4, 2, 2, -1));
  check(codeOf(cpu::embedding, shortTable) == "ERR_SHAPE", "embedding: a short table is ERR_SHAPE");
}

}  // namespace

int main() {
  const char* threads = std::getenv("DEEPNODE_NUM_THREADS");  // the same override as the addon
  ThreadPool pool(threads ? std::max(1, std::atoi(threads)) : 2);
  setCurrentPool(&pool);
  testOnce(1, 1, 5, -1);
  testOnce(5, 3, 40, 2);
  testOnce(3, 300, 2000, 0);
  testOnce(20000, 16, 4096, 7);
  testErrors();
  return finish("embedding_test");
}
