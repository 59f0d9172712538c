#include "maestro/shared/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace maestro {
namespace {

constexpr int kMaxDepth = 128;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<Json> ParseDocument() {
    Json value;
    MAESTRO_RETURN_IF_ERROR(ParseValue(0, value));
    SkipSpace();
    if (pos_ != text_.size()) return Fail("trailing characters after the JSON value");
    return value;
  }

 private:
  Status Fail(const std::string& what) const {
    return InvalidArgumentError("JSON: " + what + " at byte " + std::to_string(pos_));
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  Status ParseValue(int depth, Json& out) {
    if (depth > kMaxDepth) return Fail("nesting deeper than " + std::to_string(kMaxDepth));
    SkipSpace();
    if (pos_ >= text_.size()) return Fail("unexpected end of input");
    char c = text_[pos_];
    if (c == '{') return ParseObject(depth, out);
    if (c == '[') return ParseArray(depth, out);
    if (c == '"') {
      std::string s;
      MAESTRO_RETURN_IF_ERROR(ParseString(s));
      out = Json(std::move(s));
      return OkStatus();
    }
    if (Consume("true")) {
      out = Json(true);
      return OkStatus();
    }
    if (Consume("false")) {
      out = Json(false);
      return OkStatus();
    }
    if (Consume("null")) {
      out = Json(nullptr);
      return OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    return Fail(std::string("unexpected character '") + c + "'");
  }

  Status ParseObject(int depth, Json& out) {
    ++pos_;  // '{'
    Json::Object object;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      out = Json(std::move(object));
      return OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Fail("expected a string key");
      std::string key;
      MAESTRO_RETURN_IF_ERROR(ParseString(key));
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      Json value;
      MAESTRO_RETURN_IF_ERROR(ParseValue(depth + 1, value));
      if (!object.emplace(key, std::move(value)).second)
        return Fail("duplicate key \"" + key + "\"");
      SkipSpace();
      if (pos_ >= text_.size()) return Fail("unterminated object");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == '}') {
        ++pos_;
        break;
      }
      return Fail("expected ',' or '}'");
    }
    out = Json(std::move(object));
    return OkStatus();
  }

  Status ParseArray(int depth, Json& out) {
    ++pos_;  // '['
    Json::Array array;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      out = Json(std::move(array));
      return OkStatus();
    }
    while (true) {
      Json value;
      MAESTRO_RETURN_IF_ERROR(ParseValue(depth + 1, value));
      array.push_back(std::move(value));
      SkipSpace();
      if (pos_ >= text_.size()) return Fail("unterminated array");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == ']') {
        ++pos_;
        break;
      }
      return Fail("expected ',' or ']'");
    }
    out = Json(std::move(array));
    return OkStatus();
  }

  Status ParseHex4(uint32_t& code) {
    if (pos_ + 4 > text_.size()) return Fail("truncated \\u escape");
    code = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      code <<= 4;
      if (h >= '0' && h <= '9')
        code |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f')
        code |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        code |= static_cast<uint32_t>(h - 'A' + 10);
      else
        return Fail("bad hex digit in \\u escape");
    }
    return OkStatus();
  }

  static void AppendUtf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Status ParseString(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) return Fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) return Fail("unterminated escape");
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = 0;
          MAESTRO_RETURN_IF_ERROR(ParseHex4(cp));
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!Consume("\\u")) return Fail("unpaired surrogate");
            uint32_t low = 0;
            MAESTRO_RETURN_IF_ERROR(ParseHex4(low));
            if (low < 0xDC00 || low > 0xDFFF) return Fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Fail("unpaired surrogate");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  Status ParseNumber(Json& out) {
    size_t start = pos_;
    bool integral = true;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t begin = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ - begin;
    };
    size_t int_digits = digits();
    if (int_digits == 0) return Fail("bad number");
    if (int_digits > 1 && text_[pos_ - int_digits] == '0') return Fail("leading zero in number");
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (digits() == 0) return Fail("bad fraction");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Fail("bad exponent");
    }
    std::string literal(text_.substr(start, pos_ - start));
    errno = 0;
    if (integral) {
      char* end = nullptr;
      long long v = std::strtoll(literal.c_str(), &end, 10);
      if (errno == ERANGE) return Fail("integer out of int64 range");
      out = Json(static_cast<int64_t>(v));
    } else {
      char* end = nullptr;
      double v = std::strtod(literal.c_str(), &end);
      if (errno == ERANGE && std::isinf(v)) return Fail("number out of range");
      out = Json(v);
    }
    return OkStatus();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

void DumpString(const std::string& s, std::string& out) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

[[noreturn]] void WrongType(const char* wanted) {
  throw Error(InvalidArgumentError(std::string("JSON value is not ") + wanted));
}

}  // namespace

Result<Json> Json::Parse(std::string_view text) { return Parser(text).ParseDocument(); }

bool Json::as_bool() const {
  if (!is_bool()) WrongType("a boolean");
  return std::get<bool>(value_);
}
int64_t Json::as_int() const {
  if (!is_int()) WrongType("an integer");
  return std::get<int64_t>(value_);
}
double Json::as_double() const {
  if (is_int()) return static_cast<double>(std::get<int64_t>(value_));
  if (!std::holds_alternative<double>(value_)) WrongType("a number");
  return std::get<double>(value_);
}
const std::string& Json::as_string() const {
  if (!is_string()) WrongType("a string");
  return std::get<std::string>(value_);
}
const Json::Array& Json::as_array() const {
  if (!is_array()) WrongType("an array");
  return std::get<Array>(value_);
}
Json::Array& Json::as_array() {
  if (!is_array()) WrongType("an array");
  return std::get<Array>(value_);
}
const Json::Object& Json::as_object() const {
  if (!is_object()) WrongType("an object");
  return std::get<Object>(value_);
}
Json::Object& Json::as_object() {
  if (!is_object()) WrongType("an object");
  return std::get<Object>(value_);
}

const Json* Json::Find(std::string_view key) const {
  if (!is_object()) return nullptr;
  const auto& object = std::get<Object>(value_);
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

std::string Json::StringOr(std::string_view key, std::string fallback) const {
  const Json* value = Find(key);
  return value != nullptr && value->is_string() ? value->as_string() : fallback;
}

int64_t Json::IntOr(std::string_view key, int64_t fallback) const {
  const Json* value = Find(key);
  return value != nullptr && value->is_int() ? value->as_int() : fallback;
}

std::string Json::Dump() const {
  std::string out;
  struct Visitor {
    std::string& out;
    void operator()(std::nullptr_t) const { out += "null"; }
    void operator()(bool b) const { out += b ? "true" : "false"; }
    void operator()(int64_t v) const { out += std::to_string(v); }
    void operator()(double v) const {
      if (!std::isfinite(v)) throw Error(InvalidArgumentError("JSON cannot hold NaN or infinity"));
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", v);
      std::string text(buf);
      // Keep the value a double when read back.
      if (text.find_first_of(".eE") == std::string::npos) text += ".0";
      out += text;
    }
    void operator()(const std::string& s) const { DumpString(s, out); }
    void operator()(const Array& a) const {
      out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out += ',';
        out += a[i].Dump();
      }
      out += ']';
    }
    void operator()(const Object& o) const {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : o) {
        if (!first) out += ',';
        first = false;
        DumpString(key, out);
        out += ':';
        out += value.Dump();
      }
      out += '}';
    }
  };
  std::visit(Visitor{out}, value_);
  return out;
}

}  // namespace maestro
