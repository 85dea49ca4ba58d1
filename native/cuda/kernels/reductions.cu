// Reductions, softmax, losses, indexing, embedding, normalisation and CTC on CUDA, with
// the cpu kernels' names, buffers, attributes and checks. None is written yet: the cuda
// backend reports each as not supported (NotSupportedError) until it is.
#include "../kernels.h"

namespace deepnode::cuda {

void registerReductionKernels(KernelTable&) {}

}  // namespace deepnode::cuda
