// The host emulation's stand-ins for cuBLAS and cuDNN (fake_cublas.cc, fake_cudnn.cc):
// each library's entry points by their exported names, as the loader asks for them.
#pragma once

namespace deepnode::cuda::emu {

// The fake function exported under `name`, or nullptr when the fake has none.
void* fakeCublasSymbol(const char* name);
void* fakeCudnnSymbol(const char* name);

}  // namespace deepnode::cuda::emu
