// Many tensors per launch, for the multi-tensor kernels (the optimizers' *_steps,
// scale_in_place, norms): the tensors' items (pointers and a size) go by value into a
// launch's parameters, kItemsPerLaunch at a time, laid end to end over the launch's units
// (its elements, or its reduction tasks), so that n tensors take ceil(n / 24) launches
// whatever their sizes, and no table of pointers has to be copied to the device first.
#pragma once

#include <cstdint>
#include <vector>

#include "../../core/hd.h"
#include "../launch.h"

namespace deepnode::cuda {

// Items per launch. A chunk goes by value into the launch's parameters: at most 24 * 56 bytes
// (an RMSprop or Adam item and its end), well inside the 4 KiB a launch may carry.
constexpr int kItemsPerLaunch = 24;

// `count` items (args::AdamItem ...) laid end to end: item k holds units [end[k - 1], end[k])
// of the launch.
template <class Item>
struct ItemChunk {
  int count;
  int64_t end[kItemsPerLaunch];
  Item items[kItemsPerLaunch];
};

// The first unit of item k.
template <class Item>
DEEPNODE_HD inline int64_t startOf(const ItemChunk<Item>& chunk, int k) {
  return k == 0 ? 0 : chunk.end[k - 1];
}

// The item holding unit i: the first whose end is past it (ends increase strictly).
template <class Item>
DEEPNODE_HD inline int itemOf(const ItemChunk<Item>& chunk, int64_t i) {
  int low = 0, high = chunk.count - 1;
  while (low < high) {
    const int mid = (low + high) / 2;
    if (chunk.end[mid] > i)
      high = mid;
    else
      low = mid + 1;
  }
  return low;
}

// Calls launch(chunk) for the items in order, kItemsPerLaunch at a time, item k taking
// units(item) units; an item of no units is left out (its buffers may be null).
template <class Item, class Units, class Launch>
void forEachItemChunk(const std::vector<Item>& items, Units units, Launch launch) {
  ItemChunk<Item> chunk{};
  for (const Item& item : items) {
    const int64_t n = units(item);
    if (n == 0) continue;
    const int k = chunk.count++;
    chunk.end[k] = startOf(chunk, k) + n;
    chunk.items[k] = item;
    if (chunk.count == kItemsPerLaunch) {
      launch(chunk);
      chunk.count = 0;
    }
  }
  if (chunk.count > 0) launch(chunk);
}

// One launch over every element of the chunk's items: element(item, index in the item).
template <class Item, class Element>
void launchChunk(const char* op, const ItemChunk<Item>& chunk, Element element) {
  forEach(op, chunk.end[chunk.count - 1], [=] DEEPNODE_HD(int64_t i) {
    const int k = chunk.count == 1 ? 0 : itemOf(chunk, i);  // a lone item needs no search
    element(chunk.items[k], i - startOf(chunk, k));
  });
}

// The items (every one checked already), one unit per element: kItemsPerLaunch non-empty
// ones per launch.
template <class Item, class Element>
void runInChunks(const char* op, const std::vector<Item>& items, Element element) {
  forEachItemChunk(
      items, [](const Item& item) { return item.size; },
      [&](const ItemChunk<Item>& chunk) { launchChunk(op, chunk, element); });
}

}  // namespace deepnode::cuda
