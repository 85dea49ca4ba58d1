// The host emulation's stand-ins for cuBLAS and cuDNN (fake_cublas.cc, fake_cudnn.cc):
// each library's entry points by their exported names, as the loader asks for them.
#pragma once

#include <cstddef>
#include <cstring>

namespace deepnode::cuda::emu {

// One function a fake exports, by name.
struct FakeEntry {
  const char* name;
  void* fn;
};

// The fake as the loader will call it: the cast checks it against our declaration.
template <typename Fn>
void* entry(Fn fn) {
  return reinterpret_cast<void*>(fn);
}

// The function exported under `name` among entries, or nullptr.
template <size_t N>
void* findEntry(const FakeEntry (&entries)[N], const char* name) {
  for (const FakeEntry& e : entries) {
    if (std::strcmp(e.name, name) == 0) return e.fn;
  }
  return nullptr;
}

// The fake function exported under `name`, or nullptr when the fake has none.
void* fakeCublasSymbol(const char* name);
void* fakeCudnnSymbol(const char* name);

}  // namespace deepnode::cuda::emu
