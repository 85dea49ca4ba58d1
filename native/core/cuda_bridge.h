// The addon's entry points into the CUDA plugin's memory and kernels (cudaOpen, cudaAlloc,
// cudaFree, cudaUpload, cudaDownload, cudaDownloadAsync, cudaRun, cudaSynchronize,
// cudaMemoryStats, cudaEmptyCache, cudaWaitStats, cudaLaunches, cudaSetOption), declared in binding.d.ts.
#pragma once

#include <napi.h>

namespace deepnode {

void registerCudaBridge(Napi::Env env, Napi::Object exports);

}  // namespace deepnode
