// The attributes of an rnn_forward / rnn_backward call in the kernel tests (rnn_test.cc,
// cuda_library_test.cc): one layer-direction that writes the last of `slots` output slots.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "test_util.h"

namespace deepnode::test {

// Case: any struct with mode, reverse, steps, batch, hidden and slots.
template <typename Case>
std::vector<std::pair<std::string, AttrValue>> rnnAttrsOf(const Case& c) {
  return {{"mode", str(c.mode)},
          {"reverse", flag(c.reverse)},
          {"column", num((c.slots - 1) * c.hidden)},
          {"slot", num(c.slots - 1)},
          {"steps", num(c.steps)},
          {"batch", num(c.batch)},
          {"hidden", num(c.hidden)},
          {"outWidth", num(c.slots * c.hidden)},
          {"slots", num(c.slots)}};
}

}  // namespace deepnode::test
