// The calling convention of every native kernel: a list of buffers (borrowed typed
// arrays, outputs first) and named attributes, both checked before any memory is
// touched. Kernels throw KernelError on bad input; the binding turns it into a JS
// error, so native code never aborts the process.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace deepnode {

enum class DType { Float32, Float64, Int32, UInt8, Int8 };

const char* dtypeName(DType dtype);
size_t dtypeSize(DType dtype);

// Error raised by kernels; `code` is stable (ERR_SHAPE, ERR_DTYPE, ERR_VALUE,
// ERR_NOT_SUPPORTED, ERR_INDEX) and the message names the op and what was wrong.
class KernelError : public std::runtime_error {
 public:
  KernelError(std::string code, const std::string& message) : std::runtime_error(message), code(std::move(code)) {}
  std::string code;
};

struct Buffer {
  void* data = nullptr;
  int64_t size = 0;  // elements
  DType dtype = DType::Float32;

  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// A number the caller passed, as JavaScript writes it (NaN, Infinity, -1, 1e-7, 1e+21 rather
// than nan, inf, -1.000000, 1e-07), so that the messages match the reference backend's: the
// shortest digits that give x back (to_chars), laid out by ECMAScript's Number::toString.
inline std::string numberText(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x == 0) return "0";  // -0 too, as String(-0)
  char buffer[40];
  const std::string text(buffer, std::to_chars(buffer, buffer + sizeof buffer, x, std::chars_format::scientific).ptr);
  // text is [-]d[.ddd]e(+|-)xx: the digits, and n, the decimal point's place after the first.
  const size_t e = text.find('e');
  const int n = std::stoi(text.substr(e + 1)) + 1;
  const std::string sign = text[0] == '-' ? "-" : "";
  std::string digits;
  for (char c : text.substr(0, e)) {
    if (c >= '0' && c <= '9') digits += c;
  }
  const int k = static_cast<int>(digits.size());
  if (k <= n && n <= 21) return sign + digits + std::string(n - k, '0');
  if (0 < n && n <= 21) return sign + digits.substr(0, n) + "." + digits.substr(n);
  if (-6 < n && n <= 0) return sign + "0." + std::string(-n, '0') + digits;
  const std::string exponent = (n - 1 < 0 ? "-" : "+") + std::to_string(std::abs(n - 1));
  return sign + digits.substr(0, 1) + (k > 1 ? "." + digits.substr(1) : "") + "e" + exponent;
}

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
std::string shapeString(const Shape& shape);

struct AttrValue {
  enum class Kind { Number, Bool, String, List } kind = Kind::Number;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<double> list;
};

class KernelCall {
 public:
  std::string op;
  std::vector<Buffer> buffers;
  std::map<std::string, AttrValue> attrs;

  // Buffer `index`, checked to exist and to have `dtype`; `role` names it in errors.
  const Buffer& buffer(size_t index, const char* role) const;
  const Buffer& buffer(size_t index, const char* role, DType dtype) const;
  bool hasBuffer(size_t index) const { return index < buffers.size() && buffers[index].data != nullptr; }

  // Checks that buffer `index` holds exactly `expected` elements.
  void expectSize(size_t index, const char* role, int64_t expected) const;

  bool has(const std::string& name) const { return attrs.count(name) != 0; }
  double number(const std::string& name) const;
  double number(const std::string& name, double fallback) const;
  int64_t integer(const std::string& name) const;
  int64_t integer(const std::string& name, int64_t fallback) const;
  bool flag(const std::string& name, bool fallback) const;
  std::string string(const std::string& name) const;
  Shape shape(const std::string& name) const;  // a list of non-negative integers
  std::vector<int64_t> ints(const std::string& name) const;

  [[noreturn]] void fail(const std::string& code, const std::string& message) const;
};

using KernelFn = void (*)(KernelCall& call);

// All kernels, by op name. Filled by the register* functions listed in registry.cc.
const std::map<std::string, KernelFn>& kernelTable();

}  // namespace deepnode
