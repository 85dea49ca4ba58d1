// Kernels built on NVIDIA's libraries, registered under the cpu kernels' names: matmul by
// cuBLAS (matmul.cu), convolution by cuDNN (conv.cu), and the recurrent layers as one
// cuBLAS GEMM and one gate kernel per step (rnn.cu).
#include "library.h"

namespace deepnode::cuda {

void registerLibraryKernels(KernelTable& table) {
  table["matmul"] = matmul;
  table["conv2d"] = conv2d;
  table["conv2d_backward_data"] = conv2dBackwardData;
  table["conv2d_backward_weight"] = conv2dBackwardWeight;
  table["rnn_forward"] = rnnForward;
  table["rnn_backward"] = rnnBackward;
}

}  // namespace deepnode::cuda
