// Deferred checks (checks.h). Per device: kSlots failure slots in host-visible memory, check
// number n writing slot n % kSlots, and the failure messages of the checks not yet known to
// have passed, in number order. Kernels are queued one at a time per device (api.cc's run
// lock), in the order their checks are numbered, so a wait that covers the first `queued`
// checks may read their slots: those kernels are done, and no other kernel writes them. A
// slot is zeroed when its check is taken in, before its number comes round again.
#include "checks.h"

#include <array>
#include <atomic>
#include <cctype>
#include <deque>
#include <mutex>
#include <string>

#include "../core/kernel.h"
#include "context.h"
#include "device.h"

namespace deepnode::cuda {
namespace {

// Checks that may be in flight at once; past that the host waits for the device first.
constexpr uint64_t kSlots = 4096;

// The earliest failure a wait found, with how many later checks failed too.
struct Found {
  CheckFailure fail;
  int64_t value = 0;
  uint64_t later = 0;
};

struct DeviceChecks {
  std::mutex mutex;
  DeviceFailure* host = nullptr;  // the slots, as the host reads them
  DeviceFailure* device = nullptr;
  std::deque<CheckFailure> pending;  // checks numbered first, first + 1, ...
  uint64_t first = 0, issued = 0, queued = 0;
  Found carried;  // what a wait that could not throw found, for the next wait
};

std::array<DeviceChecks, 64>& allChecks() {
  static std::array<DeviceChecks, 64> checks;
  return checks;
}

DeviceChecks& checksOf(int device) {
  return allChecks()[static_cast<size_t>(device) % allChecks().size()];
}

std::atomic<bool> waitAtOps{false};

// Takes in the slots of the checks numbered below `queued`, and adds what they found to
// d.carried. Holds d.mutex.
void takeIn(DeviceChecks& d, uint64_t queued) {
  const uint64_t done = queued < d.issued ? queued : d.issued;
  for (; d.first < done; ++d.first) {
    DeviceFailure& slot = d.host[d.first % kSlots];
    if (slot.found != 0) {
      if (d.carried.fail) {
        ++d.carried.later;
      } else {
        d.carried.fail = std::move(d.pending.front());
        d.carried.value = slot.value;
      }
      slot = DeviceFailure{0, 0};
    }
    d.pending.pop_front();
  }
}

// "nll_loss" as deepnode names the op: "nllLoss".
std::string opName(const std::string& kernel) {
  std::string name;
  for (size_t i = 0; i < kernel.size(); ++i) {
    if (kernel[i] == '_' && i + 1 < kernel.size()) {
      name += static_cast<char>(std::toupper(static_cast<unsigned char>(kernel[++i])));
    } else {
      name += kernel[i];
    }
  }
  return name;
}

// The op's own error, renamed as one found after the op returned.
[[noreturn]] void throwLate(int device, const KernelError& error, uint64_t later) {
  const std::string message = error.what();
  const size_t colon = message.find(": ");
  const std::string op = colon == std::string::npos ? "op" : opName(message.substr(0, colon));
  const std::string detail = colon == std::string::npos ? message : message.substr(colon + 2);
  const std::string more =
      later == 0 ? "" : "; " + std::to_string(later) + " later check" + (later == 1 ? "" : "s") + " failed too";
  throw KernelError(error.code, "the " + op + " queued earlier on " + deviceName(device) + " met bad data: " + detail +
                                    " (found on the device and reported at this wait" + more +
                                    "; cuda.setSyncChecks(true) reports it at the op)");
}

}  // namespace

bool syncChecks() {
  return waitAtOps;
}

void setSyncChecks(bool on) {
  waitAtOps = on;
}

DeviceFailure* deferCheck(CheckFailure fail) {
  const int device = currentDevice();
  DeviceChecks& d = checksOf(device);
  bool full = false;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    full = d.issued - d.first >= kSlots;
  }
  if (full) {  // every check registered so far is queued: this thread queues them all
    const uint64_t queued = checksQueued(device);
    device::synchronize(device);
    std::lock_guard<std::mutex> lock(d.mutex);
    takeIn(d, queued);
  }
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.host == nullptr) {
    void* onDevice = nullptr;
    d.host = static_cast<DeviceFailure*>(device::hostVisibleAlloc(device, kSlots * sizeof(DeviceFailure), &onDevice));
    d.device = static_cast<DeviceFailure*>(onDevice);
  }
  d.pending.push_back(std::move(fail));
  return d.device + d.issued++ % kSlots;
}

void checkQueued() {
  DeviceChecks& d = checksOf(currentDevice());
  std::lock_guard<std::mutex> lock(d.mutex);
  ++d.queued;
}

uint64_t checksQueued(int device) {
  DeviceChecks& d = checksOf(device);
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.queued;
}

void reportCheckFailures(int device, uint64_t queued) {
  DeviceChecks& d = checksOf(device);
  Found found;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    if (d.host == nullptr) return;
    takeIn(d, queued);
    found = std::move(d.carried);
    d.carried = Found{};
  }
  if (!found.fail) return;
  try {
    found.fail(found.value);
  } catch (const KernelError& error) {
    throwLate(device, error, found.later);
  }
  throw KernelError("ERR_NATIVE", "a deferred check on " + deviceName(device) + " failed without an error");
}

}  // namespace deepnode::cuda
