// Argument checking shared by all kernels.
#include "kernel.h"

#include <cmath>
#include <sstream>

namespace deepnode {

const char* dtypeName(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::UInt8: return "uint8";
    case DType::Int8: return "int8";
  }
  return "unknown";
}

size_t dtypeSize(DType dtype) {
  switch (dtype) {
    case DType::Float64: return 8;
    case DType::Float32:
    case DType::Int32: return 4;
    case DType::UInt8:
    case DType::Int8: return 1;
  }
  return 1;
}

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shapeString(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

void KernelCall::fail(const std::string& code, const std::string& message) const {
  throw KernelError(code, op + ": " + message);
}

const Buffer& KernelCall::buffer(size_t index, const char* role) const {
  if (index >= buffers.size() || (buffers[index].data == nullptr && buffers[index].size != 0)) {
    fail("ERR_ARGUMENT", std::string("missing buffer '") + role + "' at position " + std::to_string(index));
  }
  return buffers[index];
}

const Buffer& KernelCall::buffer(size_t index, const char* role, DType dtype) const {
  const Buffer& b = buffer(index, role);
  if (b.dtype != dtype) {
    fail("ERR_DTYPE", std::string("buffer '") + role + "' must be " + dtypeName(dtype) + ", got " + dtypeName(b.dtype));
  }
  return b;
}

void KernelCall::expectSize(size_t index, const char* role, int64_t expected) const {
  const Buffer& b = buffer(index, role);
  if (b.size != expected) {
    fail("ERR_SHAPE", std::string("buffer '") + role + "' holds " + std::to_string(b.size) + " elements, expected " +
                          std::to_string(expected));
  }
}

double KernelCall::number(const std::string& name) const {
  auto it = attrs.find(name);
  if (it == attrs.end()) fail("ERR_ARGUMENT", "missing attribute '" + name + "'");
  if (it->second.kind == AttrValue::Kind::Bool) return it->second.boolean ? 1 : 0;
  if (it->second.kind != AttrValue::Kind::Number) fail("ERR_ARGUMENT", "attribute '" + name + "' must be a number");
  return it->second.number;
}

double KernelCall::number(const std::string& name, double fallback) const {
  return has(name) ? number(name) : fallback;
}

int64_t KernelCall::integer(const std::string& name) const {
  double v = number(name);
  if (!std::isfinite(v) || std::floor(v) != v || std::fabs(v) > 9007199254740991.0) {
    fail("ERR_ARGUMENT", "attribute '" + name + "' must be an integer");
  }
  return static_cast<int64_t>(v);
}

int64_t KernelCall::integer(const std::string& name, int64_t fallback) const {
  return has(name) ? integer(name) : fallback;
}

bool KernelCall::flag(const std::string& name, bool fallback) const {
  auto it = attrs.find(name);
  if (it == attrs.end()) return fallback;
  if (it->second.kind == AttrValue::Kind::Bool) return it->second.boolean;
  if (it->second.kind == AttrValue::Kind::Number) return it->second.number != 0;
  fail("ERR_ARGUMENT", "attribute '" + name + "' must be a boolean");
}

std::string KernelCall::string(const std::string& name) const {
  auto it = attrs.find(name);
  if (it == attrs.end()) fail("ERR_ARGUMENT", "missing attribute '" + name + "'");
  if (it->second.kind != AttrValue::Kind::String) fail("ERR_ARGUMENT", "attribute '" + name + "' must be a string");
  return it->second.string;
}

std::vector<int64_t> KernelCall::ints(const std::string& name) const {
  auto it = attrs.find(name);
  if (it == attrs.end()) fail("ERR_ARGUMENT", "missing attribute '" + name + "'");
  if (it->second.kind != AttrValue::Kind::List) fail("ERR_ARGUMENT", "attribute '" + name + "' must be a list");
  std::vector<int64_t> out;
  for (double v : it->second.list) {
    if (!std::isfinite(v) || std::floor(v) != v || std::fabs(v) > 9007199254740992.0) {
      fail("ERR_ARGUMENT", "attribute '" + name + "' must hold integers of at most 2^53");
    }
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

Shape KernelCall::shape(const std::string& name) const {
  Shape s = ints(name);
  for (int64_t d : s) {
    if (d < 0) fail("ERR_SHAPE", "attribute '" + name + "' has a negative dimension: " + shapeString(s));
  }
  return s;
}

}  // namespace deepnode
