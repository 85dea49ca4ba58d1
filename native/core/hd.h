// DEEPNODE_HD marks functions that run both on the host and on a CUDA device: under nvcc
// it is __host__ __device__, elsewhere nothing. Shared helpers (philox.h, the CUDA
// kernels' element functions) use it, so the CUDA plugin's host emulation compiles the
// very same code with g++.
#pragma once

#ifdef __CUDACC__
#define DEEPNODE_HD __host__ __device__
#else
#define DEEPNODE_HD
#endif
