// Reading a kernel call's arguments from JavaScript with plain Node-API calls, shared by the
// addon's `run` and the CUDA bridge's `cudaRun`. Every op pays for this, so each value costs
// as few Node-API calls as it can (one napi_typeof, not four Is* tests), property values are
// read by the key the enumeration returned (no new string per name), and text goes into
// strings whose capacity the caller reuses.
#pragma once

#include <napi.h>

#include <string>

#include "kernel.h"

namespace deepnode::napi_read {

// Throws the pending JS exception (a throwing getter), or Node-API's error, unless ok.
inline void check(napi_env env, napi_status status) {
  if (status != napi_ok) throw Napi::Error::New(env);
}

// The UTF-8 text of a JS string into `out`, reusing its capacity.
inline void readString(napi_env env, napi_value value, std::string& out) {
  char text[128];
  size_t length = 0;
  check(env, napi_get_value_string_utf8(env, value, text, sizeof text, &length));
  // V8 stops before a character that does not fit, so a short result can still be cut.
  if (length + 4 < sizeof text) {
    out.assign(text, length);
    return;
  }
  check(env, napi_get_value_string_utf8(env, value, nullptr, 0, &length));
  out.reserve(length + 1);
  out.resize(length);
  check(env, napi_get_value_string_utf8(env, value, &out[0], out.capacity() + 1, nullptr));
}

inline uint32_t arrayLength(napi_env env, napi_value array) {
  uint32_t length = 0;
  check(env, napi_get_array_length(env, array, &length));
  return length;
}

inline napi_value element(napi_env env, napi_value array, uint32_t index) {
  napi_value item = nullptr;
  check(env, napi_get_element(env, array, index, &item));
  return item;
}

// The enumerable string keys of `object`, own and inherited, as for...in lists them.
inline napi_value propertyNames(napi_env env, napi_value object) {
  napi_value names = nullptr;
  check(env, napi_get_property_names(env, object, &names));
  return names;
}

inline napi_value property(napi_env env, napi_value object, napi_value key) {
  napi_value value = nullptr;
  check(env, napi_get_property(env, object, key, &value));
  return value;
}

enum class AttrRead { Ok, NotNumbers, Unsupported };

// A JS array's items as numbers into `out` (cleared first); false when one is not a number.
inline bool readNumbers(napi_env env, napi_value array, std::vector<double>& out) {
  const uint32_t length = arrayLength(env, array);
  out.clear();
  for (uint32_t i = 0; i < length; ++i) {
    double number = 0;
    napi_status status = napi_get_value_double(env, element(env, array, i), &number);
    if (status == napi_number_expected) return false;
    check(env, status);
    out.push_back(number);
  }
  return true;
}

// A kernel attribute: a number, a boolean, a string or an array of numbers, into `out`
// (whose string and list are empty).
inline AttrRead readAttr(napi_env env, napi_value value, AttrValue& out) {
  napi_valuetype type = napi_undefined;
  check(env, napi_typeof(env, value, &type));
  switch (type) {
    case napi_number:
      out.kind = AttrValue::Kind::Number;
      check(env, napi_get_value_double(env, value, &out.number));
      return AttrRead::Ok;
    case napi_boolean:
      out.kind = AttrValue::Kind::Bool;
      check(env, napi_get_value_bool(env, value, &out.boolean));
      return AttrRead::Ok;
    case napi_string:
      out.kind = AttrValue::Kind::String;
      readString(env, value, out.string);
      return AttrRead::Ok;
    case napi_object: {
      bool isArray = false;
      check(env, napi_is_array(env, value, &isArray));
      if (!isArray) return AttrRead::Unsupported;
      out.kind = AttrValue::Kind::List;
      return readNumbers(env, value, out.list) ? AttrRead::Ok : AttrRead::NotNumbers;
    }
    default: return AttrRead::Unsupported;
  }
}

// The message the kernels' callers give for an attribute that `readAttr` refused.
inline std::string attrReadMessage(AttrRead read, const std::string& name) {
  return read == AttrRead::NotNumbers ? "attribute '" + name + "' must hold numbers"
                                      : "attribute '" + name + "' has an unsupported type";
}

}  // namespace deepnode::napi_read
