// Checks of an op's data that only the device can make cheaply: an index in range, a target
// that is a class. By default (deferred checks) the host does not wait for the answer: each
// check's kernel records a failure in a slot of host-visible memory of its own, and the host
// throws the earliest failure at the next point where it waits for the device anyway (a
// read of values, cuda.synchronize), as PyTorch reports a device-side assert, but without
// spoiling the CUDA context. The op that met bad data writes unspecified values (its kernels
// skip what is out of range, so no memory outside its buffers is touched). With sync checks
// on, the host waits at the op and throws there, before the op writes anything, as the cpu
// backend does.
#pragma once

#include <cstdint>
#include <functional>

namespace deepnode::cuda {

// What a check's kernel writes where it finds bad data: found = 1 + the first bad position
// (0, as zeroed memory holds, when there is none) and the value found there.
struct DeviceFailure {
  unsigned long long found;
  long long value;
};

// Throws the op's error for the bad value found (a KernelError naming the op).
using CheckFailure = std::function<void(int64_t value)>;

// Whether checks wait for the device at the op (the sync_checks option; off by default).
bool syncChecks();
void setSyncChecks(bool on);

// Registers a deferred check of the op now running on the current device and returns the
// device address of its slot; `fail` is kept until the check is known to have passed. Call
// checkQueued once its kernel is queued (or failed to be). When the slots are all taken the
// host first waits for the device and takes in what the checks found (an earlier failure is
// then kept for the next wait, not thrown here).
DeviceFailure* deferCheck(CheckFailure fail);
void checkQueued();

// How many checks have been queued on `device`: taken before waiting for the device, it says
// which checks the wait covers.
uint64_t checksQueued(int device);

// After waiting for `device`: takes in what the covered checks (the first `queued`) found,
// and throws the earliest failure, with a message naming its op and how many later checks
// failed too.
void reportCheckFailures(int device, uint64_t queued);

}  // namespace deepnode::cuda
