// Deferred checks (checks.h): per device, one failure record in host-visible memory that the
// check kernels write, and the failure messages of the checks not yet known to have passed.
// Kernels are queued one at a time per device (api.cc's run lock), in the order their checks
// are numbered, so the largest rank in the record is the earliest failure.
#include "checks.h"

#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <string>

#include "../core/kernel.h"
#include "context.h"
#include "device.h"

namespace deepnode::cuda {
namespace {

// Past this many unreported checks the host waits for the device before queuing more, so
// the failure messages kept stay few and the check numbers fit their bits.
constexpr uint64_t kMaxPending = 4096;

struct DeviceChecks {
  std::mutex mutex;
  DeviceFailure* host = nullptr;  // the record, as the host reads it
  DeviceFailure* device = nullptr;
  std::deque<CheckFailure> pending;  // checks numbered first, first + 1, ...
  uint64_t first = 0, issued = 0;
};

std::array<DeviceChecks, 64>& allChecks() {
  static std::array<DeviceChecks, 64> checks;
  return checks;
}

DeviceChecks& checksOf(int device) {
  return allChecks()[static_cast<size_t>(device) % allChecks().size()];
}

std::atomic<bool> waitAtOps{false};

// The op's own error, renamed as one found after the op returned.
[[noreturn]] void throwLate(int device, const KernelError& error) {
  const std::string message = error.what();
  const size_t colon = message.find(": ");
  const std::string op = colon == std::string::npos ? "an op" : message.substr(0, colon);
  const std::string detail = colon == std::string::npos ? message : message.substr(colon + 2);
  throw KernelError(error.code, "the " + op + " queued earlier on " + deviceName(device) + " met bad data: " + detail +
                                    " (found on the device and reported at this wait; cuda.setSyncChecks(true) "
                                    "reports it at the op)");
}

}  // namespace

bool syncChecks() {
  return waitAtOps;
}

void setSyncChecks(bool on) {
  waitAtOps = on;
}

DeferredCheck deferCheck(CheckFailure fail) {
  const int device = currentDevice();
  DeviceChecks& d = checksOf(device);
  bool full = false;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    full = d.issued - d.first >= kMaxPending;
  }
  if (full) {
    const uint64_t issued = checksIssued(device);
    device::synchronize(device);
    reportCheckFailures(device, issued);
  }
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.host == nullptr) {
    void* onDevice = nullptr;
    d.host = static_cast<DeviceFailure*>(device::hostVisibleAlloc(device, sizeof(DeviceFailure), &onDevice));
    d.device = static_cast<DeviceFailure*>(onDevice);
  }
  d.pending.push_back(std::move(fail));
  return DeferredCheck{d.device, d.issued++ << kPositionBits};
}

uint64_t checksIssued(int device) {
  DeviceChecks& d = checksOf(device);
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.issued;
}

void reportCheckFailures(int device, uint64_t issued) {
  DeviceChecks& d = checksOf(device);
  CheckFailure fail;
  int64_t value = 0;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    if (d.host == nullptr) return;
    uint64_t done = issued < d.issued ? issued : d.issued;  // checks known to have run
    const unsigned long long rank = d.host->rank;
    if (rank != 0) {
      const uint64_t number = ~rank >> kPositionBits;
      if (number >= d.first && number < d.issued) {
        fail = std::move(d.pending[number - d.first]);
        value = d.host->value;
        if (number + 1 > done) done = number + 1;  // it ran, so every check before it did
      }
      d.host->rank = 0;
    }
    for (; d.first < done; ++d.first) d.pending.pop_front();
    if (d.pending.empty()) d.first = d.issued = 0;  // none in flight: numbering starts again
  }
  if (!fail) return;
  try {
    fail(value);
  } catch (const KernelError& error) {
    throwLate(device, error);
  }
  throw KernelError("ERR_NATIVE", "a deferred check on " + deviceName(device) + " failed without an error");
}

}  // namespace deepnode::cuda
