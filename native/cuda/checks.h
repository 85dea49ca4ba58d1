// Checks of an op's data that only the device can make cheaply: an index in range, a target
// that is a class. By default (deferred checks) the host does not wait for the answer: the
// device records the first failure in host-visible memory, and the host throws it at the
// next point where it waits for the device anyway (a read of values, cuda.synchronize), as
// PyTorch reports a device-side assert, but without spoiling the CUDA context. The op that
// met bad data writes unspecified values (its kernels skip what is out of range, so no
// memory outside its buffers is touched). With sync checks on, the host waits at the op and
// throws there, before the op writes anything, as the cpu backend does.
#pragma once

#include <cstdint>
#include <functional>

namespace deepnode::cuda {

// The earliest failure the device found. rank = ~((check number << kPositionBits) | position):
// 0 (zeroed memory) when there is none, and the largest for the earliest check's first bad
// element. value is what was found there.
struct DeviceFailure {
  unsigned long long rank;
  long long value;
};
constexpr int kPositionBits = 40;

// Throws the op's error for the bad value found (a KernelError naming the op).
using CheckFailure = std::function<void(int64_t value)>;

// Whether checks wait for the device at the op (the sync_checks option; off by default).
bool syncChecks();
void setSyncChecks(bool on);

// Where the device records a failure of one deferred check, and the rank bits that number it.
struct DeferredCheck {
  DeviceFailure* record;  // device address of the current device's record
  unsigned long long base;
};

// Registers a deferred check of the op now running on the current device; `fail` is kept
// until the check is known to have passed. When very many checks are unreported the host
// first waits for the device and reports them (so this may throw an earlier op's failure).
DeferredCheck deferCheck(CheckFailure fail);

// How many checks have been registered on `device`: taken before waiting for the device,
// it says which checks the wait covers.
uint64_t checksIssued(int device);

// After waiting for `device`: forgets the checks the wait covered (those numbered below
// `issued`) and throws the first failure the device recorded, if there is one, with a
// message naming the op that met it.
void reportCheckFailures(int device, uint64_t issued);

}  // namespace deepnode::cuda
