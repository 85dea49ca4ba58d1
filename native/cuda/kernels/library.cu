// Kernels built on NVIDIA's libraries: matmul by cuBLAS, convolution by cuDNN, and the
// recurrent layers. None is written yet: the cuda backend reports each as not supported
// (NotSupportedError) until it is.
#include "../kernels.h"

namespace deepnode::cuda {

void registerLibraryKernels(KernelTable&) {}

}  // namespace deepnode::cuda
