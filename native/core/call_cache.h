// A KernelCall kept per op name and refilled on every call, so that a call of the same op with
// the same attribute names (the usual case: a training step repeats its ops) allocates
// nothing: the attribute entries, their lists and the buffer vector keep their capacity.
// Used by the addon's `run` (addon.cc) and the CUDA plugin's `run` (native/cuda/api.cc).
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "kernel.h"

namespace deepnode {

using AttrEntry = std::map<std::string, AttrValue>::iterator;

struct CachedCall {
  KernelFn fn = nullptr;
  KernelCall call;
  std::vector<AttrEntry> written;  // AttrWriter's list, kept for its capacity
  std::string name;                // the attribute name being read
  bool busy = false;               // being filled or run: a re-entrant call of the op uses a fresh one
};

// The cached calls by op name; `find` fills an entry from `table` on first use.
class CallCache {
 public:
  template <typename Table>
  CachedCall* find(const std::string& op, const Table& table) {
    auto cached = entries_.find(op);
    if (cached != entries_.end()) return &cached->second;
    auto kernel = table.find(op);
    if (kernel == table.end()) return nullptr;
    CachedCall& entry = entries_[op];
    entry.fn = kernel->second;
    entry.call.op = op;
    return &entry;
  }

 private:
  std::map<std::string, CachedCall> entries_;
};

// Marks a cached call busy while it lives; `call()` is the cached one, or a fresh one beside
// it when the cached one is already in use (a JS getter on the attributes calling run again).
class CallLease {
 public:
  explicit CallLease(CachedCall& entry) : entry_(entry), reentrant_(entry.busy) {
    if (reentrant_) {
      fresh_.call.op = entry.call.op;
    } else {
      entry_.busy = true;
    }
  }
  ~CallLease() {
    if (!reentrant_) entry_.busy = false;
  }
  CallLease(const CallLease&) = delete;
  CallLease& operator=(const CallLease&) = delete;

  KernelCall& call() { return reentrant_ ? fresh_.call : entry_.call; }
  std::vector<AttrEntry>& written() { return reentrant_ ? fresh_.written : entry_.written; }
  std::string& name() { return reentrant_ ? fresh_.name : entry_.name; }

 private:
  CachedCall& entry_;
  bool reentrant_;
  CachedCall fresh_;
};

// Rewrites a call's attributes in place: entries named again are reset and refilled, new
// names are added, and `finish` drops the names this call did not set. A name set twice
// keeps its last value, as assigning into a fresh map would.
class AttrWriter {
 public:
  explicit AttrWriter(CallLease& lease) : attrs_(lease.call().attrs), set_(lease.written()) { set_.clear(); }

  // The value for `name`, reset to a number 0 with empty string and list.
  AttrValue& set(const std::string& name) {
    auto it = attrs_.find(name);
    if (it == attrs_.end()) it = attrs_.emplace(name, AttrValue{}).first;
    if (std::find(set_.begin(), set_.end(), it) == set_.end()) set_.push_back(it);  // a name given twice
    AttrValue& value = it->second;
    value.kind = AttrValue::Kind::Number;
    value.number = 0;
    value.boolean = false;
    value.string.clear();
    value.list.clear();
    return value;
  }

  void finish() {
    if (set_.size() == attrs_.size()) return;  // every entry was set again
    for (auto it = attrs_.begin(); it != attrs_.end();) {
      bool wasSet = false;
      for (AttrEntry used : set_) wasSet = wasSet || used == it;
      it = wasSet ? std::next(it) : attrs_.erase(it);
    }
  }

 private:
  std::map<std::string, AttrValue>& attrs_;
  std::vector<AttrEntry>& set_;  // the entries set so far
};

}  // namespace deepnode
