// Reductions, softmax, losses, indexing, embedding, normalisation and CTC on CUDA, with
// the cpu kernels' names, buffers, attributes and checks. Each group lives in its own
// file (reduce.cu, softmax.cu, loss.cu, index.cu, norm.cu, ctc.cu), registered here.
#include "reductions.h"

namespace deepnode::cuda {

void registerReductionKernels(KernelTable& table) {
  registerReduceKernels(table);
  registerSoftmaxKernels(table);
  registerLossKernels(table);
  registerIndexKernels(table);
  registerNormKernels(table);
  registerCtcKernels(table);
}

}  // namespace deepnode::cuda
