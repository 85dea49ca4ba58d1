// Counting the times the host waits for a device's stream, by what waited: a read of values,
// cuda.synchronize, an upload that could not be staged, an allocation that emptied the cache,
// or an op that reads a value back (named by its kernel). On a GPU each wait stalls the
// host until every queued kernel is done, so a training step that waits runs slower; these
// counts let a user, and our tests, find where a loop waits. Both builds count alike: the
// device layer calls note() wherever it waits (the host emulation wherever a GPU would).
#pragma once

#include "plugin_api.h"

namespace deepnode::cuda::waits {

// What the calling thread is doing, for the waits it makes meanwhile; entry points set it
// for their extent, and a nested one keeps the outermost (an op's scratch allocation that
// empties the cache counts as the op's wait).
enum class Doing { Other, Read, Synchronize, Upload, Allocate, Op, Count };

class Activity {
 public:
  // `op` names the kernel for Doing::Op and must outlive the activity.
  explicit Activity(Doing doing, const char* op = nullptr);
  ~Activity();
  Activity(const Activity&) = delete;
  Activity& operator=(const Activity&) = delete;

 private:
  bool outermost_;
};

// The device layer has just waited for `device`'s stream.
void note(int device);

// The counts for `device` since the plugin was loaded.
DeepnodeCudaWaitStats stats(int device);

}  // namespace deepnode::cuda::waits
