// A small, strict JSON value type with a parser and a writer.
//
// It exists so that the file formats every build needs (safetensors headers, checkpoint
// manifests and trainer state) parse with the standard library alone: the LibTorch-only build
// on the GPU machines has no JSON library of Debian's. Integers without a fraction or exponent
// are kept exactly as int64; other numbers are doubles. Objects keep keys sorted and reject
// duplicate keys. Values are thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json, std::less<>>;

  Json() = default;                                      // null
  Json(std::nullptr_t) {}                                // NOLINT(google-explicit-constructor)
  Json(bool b) : value_(b) {}                            // NOLINT(google-explicit-constructor)
  Json(int v) : value_(static_cast<int64_t>(v)) {}       // NOLINT(google-explicit-constructor)
  Json(int64_t v) : value_(v) {}                         // NOLINT(google-explicit-constructor)
  Json(uint64_t v) : value_(static_cast<int64_t>(v)) {}  // NOLINT(google-explicit-constructor)
  Json(double v) : value_(v) {}                          // NOLINT(google-explicit-constructor)
  Json(const char* s) : value_(std::string(s)) {}        // NOLINT(google-explicit-constructor)
  Json(std::string s) : value_(std::move(s)) {}          // NOLINT(google-explicit-constructor)
  Json(Array a) : value_(std::move(a)) {}                // NOLINT(google-explicit-constructor)
  Json(Object o) : value_(std::move(o)) {}               // NOLINT(google-explicit-constructor)

  // Parses one JSON document (RFC 8259). INVALID_ARGUMENT with the byte offset on bad input.
  static Result<Json> Parse(std::string_view text);

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(value_); }
  bool is_bool() const { return std::holds_alternative<bool>(value_); }
  bool is_int() const { return std::holds_alternative<int64_t>(value_); }
  bool is_number() const { return is_int() || std::holds_alternative<double>(value_); }
  bool is_string() const { return std::holds_alternative<std::string>(value_); }
  bool is_array() const { return std::holds_alternative<Array>(value_); }
  bool is_object() const { return std::holds_alternative<Object>(value_); }

  // Accessors; each throws maestro::Error (INVALID_ARGUMENT) on the wrong type.
  bool as_bool() const;
  int64_t as_int() const;
  double as_double() const;  // ints convert
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Object member or nullptr when absent (or when this is not an object).
  const Json* Find(std::string_view key) const;
  // An object member's string or integer value; `fallback` when absent or of another type.
  std::string StringOr(std::string_view key, std::string fallback = "") const;
  int64_t IntOr(std::string_view key, int64_t fallback) const;

  // Compact text; objects in key order, so equal values give equal text.
  std::string Dump() const;

  friend bool operator==(const Json& a, const Json& b) { return a.value_ == b.value_; }

 private:
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> value_;
};

}  // namespace maestro
