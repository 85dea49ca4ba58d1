// See allocator.h.
#include "allocator.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "../core/kernel.h"
#include "context.h"
#include "device.h"

namespace deepnode::cuda {
namespace {

constexpr size_t kSmallQuantum = 512;
constexpr size_t kLargeQuantum = size_t(1) << 20;

std::atomic<size_t> limitBytes{0};
std::atomic<size_t> reservedEverywhere{0};

std::string mib(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / double(1 << 20));
  return text;
}

}  // namespace

size_t CachingAllocator::roundSize(size_t bytes) {
  if (bytes == 0) return kSmallQuantum;
  size_t quantum = bytes < kLargeQuantum ? kSmallQuantum : kLargeQuantum;
  return (bytes + quantum - 1) / quantum * quantum;
}

void CachingAllocator::setLimit(size_t bytes) {
  limitBytes = bytes;
}

// The smallest cached block that fits, if it wastes at most a quarter of itself.
void* CachingAllocator::fromCache(size_t size) {
  auto it = cache_.lower_bound(size);
  if (it == cache_.end() || it->first - size > it->first / 4) return nullptr;
  void* data = it->second;
  live_[data] = it->first;
  allocated_ += static_cast<int64_t>(it->first);
  cache_.erase(it);
  ++cacheHits_;
  return data;
}

void* CachingAllocator::fromDevice(size_t size) {
  size_t limit = limitBytes.load();
  if (limit != 0 && reservedEverywhere.load() + size > limit) return nullptr;
  void* data = device::rawAlloc(device_, size);
  if (data == nullptr) return nullptr;
  ++deviceAllocations_;
  reservedEverywhere += size;
  reserved_ += static_cast<int64_t>(size);
  allocated_ += static_cast<int64_t>(size);
  live_[data] = size;
  return data;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = roundSize(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* data = fromCache(size);
  if (data == nullptr) data = fromDevice(size);
  if (data == nullptr && !cache_.empty()) {
    ++oomRetries_;
    emptyCacheLocked();
    data = fromDevice(size);
  }
  if (data == nullptr) failOutOfMemory(bytes, size);
  if (allocated_ > peak_) peak_ = allocated_;
  return data;
}

void CachingAllocator::failOutOfMemory(size_t bytes, size_t size) {
  size_t freeBytes = 0, totalBytes = 0;
  device::memoryInfo(device_, freeBytes, totalBytes);
  std::string message = deviceName(device_) + ": out of memory allocating " + mib(static_cast<int64_t>(bytes)) +
                        " (a block of " + mib(static_cast<int64_t>(size)) + "); allocated " + mib(allocated_) +
                        ", reserved " + mib(reserved_) + " after emptying the cache; the device has " +
                        mib(static_cast<int64_t>(freeBytes)) + " free of " + mib(static_cast<int64_t>(totalBytes));
  size_t limit = limitBytes.load();
  if (limit != 0) message += ", and the memory limit is " + mib(static_cast<int64_t>(limit));
  throw KernelError("ERR_OUT_OF_MEMORY", message);
}

void CachingAllocator::release(void* data) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(data);
  if (it == live_.end()) {
    throw KernelError("ERR_VALUE", deviceName(device_) + ": release of memory this allocator did not give out");
  }
  allocated_ -= static_cast<int64_t>(it->second);
  cache_.emplace(it->second, data);
  live_.erase(it);
}

void CachingAllocator::emptyCacheLocked() {
  if (cache_.empty()) return;
  // Kernels queued earlier may still use a cached block: wait for them before freeing.
  device::synchronize(device_);
  for (auto& [size, data] : cache_) {
    device::rawFree(device_, data);
    reserved_ -= static_cast<int64_t>(size);
    reservedEverywhere -= size;
  }
  cache_.clear();
}

void CachingAllocator::emptyCache() {
  std::lock_guard<std::mutex> lock(mutex_);
  emptyCacheLocked();
}

DeepnodeCudaMemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  DeepnodeCudaMemoryStats out{};
  out.allocated = allocated_;
  out.reserved = reserved_;
  out.peakAllocated = peak_;
  out.liveBuffers = static_cast<int64_t>(live_.size());
  out.deviceAllocations = deviceAllocations_;
  out.cacheHits = cacheHits_;
  out.oomRetries = oomRetries_;
  return out;
}

CachingAllocator& allocatorFor(int device) {
  static const int count = device::count();
  static std::vector<std::unique_ptr<CachingAllocator>> allocators = [] {
    std::vector<std::unique_ptr<CachingAllocator>> all;
    for (int i = 0; i < count; ++i) all.push_back(std::make_unique<CachingAllocator>(i));
    return all;
  }();
  if (device < 0 || device >= count) {
    throw KernelError("ERR_VALUE", deviceName(device) + " does not exist: this machine has " + std::to_string(count) +
                                       " CUDA device(s)");
  }
  return *allocators[static_cast<size_t>(device)];
}

}  // namespace deepnode::cuda
