// The plugin's kernel table, filled once from each family's register function.
#include "kernels.h"

namespace deepnode::cuda {

const KernelTable& kernelTable() {
  static const KernelTable table = [] {
    KernelTable all;
    registerElementwiseKernels(all);
    registerReductionKernels(all);
    registerLibraryKernels(all);
    return all;
  }();
  return table;
}

}  // namespace deepnode::cuda
