// The CUDA plugin's kernels by family. Each family registers its kernels under the same
// names and with the same buffers and attributes as the cpu kernels (native/core/
// registry.cc, binding.d.ts), so the cuda backend passes what the cpu backend passes.
#pragma once

#include <map>
#include <string>

#include "../core/kernel.h"

namespace deepnode::cuda {

using KernelTable = std::map<std::string, KernelFn>;

// Element-wise, creation and randomness, slicing, optimizer steps, pooling.
void registerElementwiseKernels(KernelTable& table);
// Reductions, softmax, losses, indexing, embedding, normalisation, CTC.
void registerReductionKernels(KernelTable& table);
// cuBLAS matmul, cuDNN convolution, recurrent layers.
void registerLibraryKernels(KernelTable& table);

// Every kernel of the plugin, by name.
const KernelTable& kernelTable();

}  // namespace deepnode::cuda
