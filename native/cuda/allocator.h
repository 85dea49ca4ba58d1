// The caching allocator: one per device. Freed blocks are kept, by size, for later
// allocations of about the same size, so a training step after the first asks the device
// for nothing. All work is on one stream per device, so a block freed while kernels that
// use it are still queued can be handed out again at once: the new owner's work is
// queued after theirs. When the device is out of memory the cache is emptied and the
// allocation retried once; then OutOfMemoryError (ERR_OUT_OF_MEMORY) with the figures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "plugin_api.h"

namespace deepnode::cuda {

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}

  // At least `bytes` of device memory (not cleared); throws on out of memory.
  void* allocate(size_t bytes);
  // Returns a block from allocate to the cache; ERR_VALUE for a pointer it did not give.
  void release(void* data);
  // Gives every cached block back to the device.
  void emptyCache();
  DeepnodeCudaMemoryStats stats();

  // The most bytes all devices together may reserve (0: no limit), to try out-of-memory
  // handling without filling a GPU.
  static void setLimit(size_t bytes);

  // Block sizes: multiples of 512 bytes below 1 MiB, of 1 MiB above.
  static size_t roundSize(size_t bytes);

 private:
  void* fromCache(size_t size);
  void* fromDevice(size_t size);
  [[noreturn]] void failOutOfMemory(size_t bytes, size_t size);
  void emptyCacheLocked();

  int device_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;  // block -> size
  std::multimap<size_t, void*> cache_;      // size -> block
  int64_t allocated_ = 0, reserved_ = 0, peak_ = 0;
  int64_t deviceAllocations_ = 0, cacheHits_ = 0, oomRetries_ = 0;
};

// The allocator of `device`; ERR_VALUE when there is no such device.
CachingAllocator& allocatorFor(int device);

}  // namespace deepnode::cuda
