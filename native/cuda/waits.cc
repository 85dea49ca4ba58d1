// See waits.h.
#include "waits.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace deepnode::cuda::waits {
namespace {

struct Current {
  Doing doing = Doing::Other;
  const char* op = nullptr;
};
thread_local Current current;

// Waits are rare and each costs a round trip to the device, so a mutex and a map are cheap
// beside them.
struct Counts {
  int64_t byDoing[static_cast<int>(Doing::Count)] = {};
  std::map<std::string, int64_t> byOp;
};
std::mutex countsMutex;
std::map<int, Counts> counts;

}  // namespace

Activity::Activity(Doing doing, const char* op) : outermost_(current.doing == Doing::Other) {
  if (outermost_) current = Current{doing, op};
}

Activity::~Activity() {
  if (outermost_) current = Current{};
}

void note(int device) {
  std::lock_guard<std::mutex> lock(countsMutex);
  Counts& c = counts[device];
  ++c.byDoing[static_cast<int>(current.doing)];
  if (current.doing == Doing::Op) ++c.byOp[current.op == nullptr ? "" : current.op];
}

DeepnodeCudaWaitStats stats(int device) {
  std::lock_guard<std::mutex> lock(countsMutex);
  DeepnodeCudaWaitStats out{};
  const Counts& c = counts[device];
  out.reads = c.byDoing[static_cast<int>(Doing::Read)];
  out.synchronizes = c.byDoing[static_cast<int>(Doing::Synchronize)];
  out.uploads = c.byDoing[static_cast<int>(Doing::Upload)];
  out.allocations = c.byDoing[static_cast<int>(Doing::Allocate)];
  out.other = c.byDoing[static_cast<int>(Doing::Other)];
  // The ops that waited most first, as many as fit; the rest are counted in opsLeftOut.
  std::vector<std::pair<std::string, int64_t>> ops(c.byOp.begin(), c.byOp.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [op, count] : ops) {
    if (out.opCount == DEEPNODE_CUDA_MAX_WAIT_OPS) {
      out.opsLeftOut += count;
      continue;
    }
    DeepnodeCudaOpWaits& entry = out.ops[out.opCount++];
    std::snprintf(entry.op, sizeof entry.op, "%s", op.c_str());
    entry.count = count;
  }
  return out;
}

}  // namespace deepnode::cuda::waits
