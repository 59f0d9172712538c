#include "maestro/shared/config_tree.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "maestro/shared/file_util.h"

#ifdef MAESTRO_HAVE_YAML_CPP
#include <yaml-cpp/yaml.h>
#endif

namespace maestro {
namespace {

// Plain scalars are typed by hand-written scanners (std::regex recursed once per character: a
// long digit string overflowed the stack).
size_t Digits(std::string_view s, size_t i) {
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return i;
}

// [-+]?[0-9]+
bool IsIntText(std::string_view s) {
  const size_t start = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
  return s.size() > start && Digits(s, start) == s.size();
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsFloatText(std::string_view s) {
  size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
  const size_t whole = Digits(s, i);
  if (whole > i) {
    i = whole;
    if (i < s.size() && s[i] == '.') i = Digits(s, i + 1);
  } else {
    if (i >= s.size() || s[i] != '.') return false;
    const size_t fraction = Digits(s, i + 1);
    if (fraction == i + 1) return false;
    i = fraction;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    const size_t exponent = Digits(s, i);
    if (exponent == i) return false;
    i = exponent;
  }
  return i == s.size();
}

// Budgets of one config tree: YAML aliases share nodes, so a small file can describe a tree of
// billions ("billion laughs"); expanding it is refused past these.
constexpr int64_t kMaxConfigNodes = 200000;
constexpr int kMaxConfigDepth = 64;

// ParseConfigText; `syntax_error` tells a text that is not YAML (or JSON) from one refused
// for its content.
Result<Json> ParseText(std::string_view text, const std::string& source, bool* syntax_error);

std::string Shorten(std::string_view s) {
  if (s.size() <= 24) return std::string(s);
  return std::string(s.substr(0, 16)) + "... (" + std::to_string(s.size()) + " characters)";
}

std::string TypeName(const Json& value) {
  if (value.is_null()) return "null";
  if (value.is_bool()) return "a boolean";
  if (value.is_int()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "a list";
  return "a mapping";
}

#ifdef MAESTRO_HAVE_YAML_CPP
// `nodes` counts the tree's nodes as they are made (aliases expanded).
Json FromYaml(const YAML::Node& node, int64_t& nodes, int depth) {
  if (++nodes > kMaxConfigNodes) {
    throw Error(InvalidArgumentError("the config expands to more than " +
                                     std::to_string(kMaxConfigNodes) +
                                     " values (YAML aliases are expanded; at most that many)"));
  }
  if (depth > kMaxConfigDepth) {
    throw Error(InvalidArgumentError("the config nests deeper than " +
                                     std::to_string(kMaxConfigDepth) + " levels"));
  }
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json();
    case YAML::NodeType::Scalar: {
      // Quoted scalars carry the "!" tag and stay strings.
      if (node.Tag() == "!") return Json(node.Scalar());
      auto value = ParseConfigScalar(node.Scalar());
      if (!value.ok()) throw Error(value.status());
      return *value;
    }
    case YAML::NodeType::Sequence: {
      Json::Array array;
      for (const auto& item : node) array.push_back(FromYaml(item, nodes, depth + 1));
      return Json(std::move(array));
    }
    case YAML::NodeType::Map: {
      Json::Object object;
      for (const auto& item : node) {
        std::string key = item.first.Scalar();
        if (object.count(key)) throw Error(InvalidArgumentError("duplicate key '" + key + "'"));
        object.emplace(std::move(key), FromYaml(item.second, nodes, depth + 1));
      }
      return Json(std::move(object));
    }
  }
  return Json();
}
#endif

}  // namespace

Result<Json> ParseConfigScalar(std::string_view text) {
  std::string s(text);
  if (s.empty() || s == "null" || s == "~" || s == "Null" || s == "NULL") return Json();
  if (s == "true" || s == "True" || s == "TRUE") return Json(true);
  if (s == "false" || s == "False" || s == "FALSE") return Json(false);
  const bool is_int = IsIntText(s);
  if (is_int || IsFloatText(s)) {
    if (s.size() > kMaxNumberChars) {
      return InvalidArgumentError("the number " + Shorten(s) + " is longer than " +
                                  std::to_string(kMaxNumberChars) + " characters");
    }
    if (is_int) {
      errno = 0;
      long long v = std::strtoll(s.c_str(), nullptr, 10);
      if (errno != ERANGE) return Json(static_cast<int64_t>(v));
    }
    const double v = std::strtod(s.c_str(), nullptr);
    if (!std::isfinite(v)) {
      return InvalidArgumentError("the number " + Shorten(s) + " is out of a double's range");
    }
    return Json(v);
  }
  if ((s.front() == '[' && s.back() == ']') || (s.front() == '{' && s.back() == '}')) {
    bool syntax_error = false;
    auto flow = ParseText(s, "value", &syntax_error);
    if (flow.ok()) return *flow;
    // Not flow syntax: a plain string. A budget or a number refused inside it: the error.
    if (!syntax_error) return flow.status();
  }
  if (s.size() >= 2 &&
      ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\''))) {
    return Json(s.substr(1, s.size() - 2));
  }
  return Json(s);
}

Result<Json> ParseConfigText(std::string_view text, const std::string& source) {
  bool syntax_error = false;
  return ParseText(text, source, &syntax_error);
}

namespace {

Result<Json> ParseText(std::string_view text, const std::string& source, bool* syntax_error) {
  // A JSON document (what the coordinator writes for its trainers) reads as JSON exactly: its
  // strings stay strings and its numbers keep their type.
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    auto json = Json::Parse(text);
    if (json.ok()) return json;
  }
#ifdef MAESTRO_HAVE_YAML_CPP
  try {
    YAML::Node root = YAML::Load(std::string(text));
    int64_t nodes = 0;
    Json tree = FromYaml(root, nodes, 0);
    if (tree.is_null()) return Json(Json::Object{});  // an empty file
    return tree;
  } catch (const YAML::Exception& e) {
    *syntax_error = true;
    return InvalidArgumentError(source + ": " + e.what());
  } catch (const Error& e) {
    return e.status().WithContext(source);
  }
#else
  auto tree = Json::Parse(text);
  if (!tree.ok()) {
    *syntax_error = true;
    return InvalidArgumentError(source + ": " + tree.status().message() +
                                " (this build has no YAML library: write the config as JSON)");
  }
  return tree;
#endif
}

}  // namespace

Result<Json> LoadConfigFile(const std::string& path) {
  MAESTRO_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseConfigText(text, path);
}

Status ApplyConfigOverride(Json& tree, std::string_view assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return InvalidArgumentError("override '" + std::string(assignment) + "' is not key=value");
  }
  auto value = ParseConfigScalar(assignment.substr(eq + 1));
  if (!value.ok())
    return value.status().WithContext("override " + std::string(assignment.substr(0, eq)));
  return SetConfigValue(tree, assignment.substr(0, eq), std::move(*value)).WithContext("override");
}

Status SetConfigValue(Json& tree, std::string_view dotted, Json value) {
  const std::string key(dotted);
  if (!tree.is_object()) tree = Json(Json::Object{});
  Json* node = &tree;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part =
        key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) return InvalidArgumentError("key '" + key + "' has an empty part");
    auto& object = node->as_object();
    if (dot == std::string::npos) {
      object[part] = std::move(value);
      return OkStatus();
    }
    Json& child = object[part];
    if (child.is_null()) child = Json(Json::Object{});
    if (!child.is_object()) {
      return InvalidArgumentError("'" + key + "': '" + key.substr(0, dot) + "' is not a mapping");
    }
    node = &child;
    start = dot + 1;
  }
}

const Json* FindConfigValue(const Json& tree, std::string_view key) {
  const Json* node = &tree;
  size_t start = 0;
  while (node != nullptr) {
    const size_t dot = key.find('.', start);
    node = node->is_object() ? node->Find(key.substr(start, dot - start)) : nullptr;
    if (dot == std::string_view::npos) return node;
    start = dot + 1;
  }
  return nullptr;
}

void EraseConfigValue(Json& tree, std::string_view key) {
  Json* node = &tree;
  size_t start = 0;
  while (node->is_object()) {
    const size_t dot = key.find('.', start);
    auto& fields = node->as_object();
    auto it = fields.find(key.substr(start, dot - start));
    if (it == fields.end()) return;
    if (dot == std::string_view::npos) {
      fields.erase(it);
      return;
    }
    node = &it->second;
    start = dot + 1;
  }
}

ConfigReader::ConfigReader(const Json* object, std::string path)
    : object_(object), path_(std::move(path)) {
  if (object_ != nullptr && !object_->is_object()) {
    first_error_ = InvalidArgumentError("'" + (path_.empty() ? std::string("config") : path_) +
                                        "' must be a mapping, found " + TypeName(*object_));
    object_ = nullptr;
  }
}

std::string ConfigReader::Dotted(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const Json* ConfigReader::Lookup(std::string_view key) {
  if (object_ == nullptr) return nullptr;
  const Json* value = object_->Find(key);
  if (value != nullptr) read_.emplace(key);
  return value;
}

void ConfigReader::Fail(std::string_view key, const std::string& message) {
  if (first_error_.ok()) first_error_ = InvalidArgumentError("'" + Dotted(key) + "': " + message);
}

void ConfigReader::Read(std::string_view key, int64_t* out) {
  const Json* v = Lookup(key);
  if (v == nullptr) return;
  if (!v->is_int())
    return Fail(key, "expected an integer, found " + TypeName(*v) + " " + v->Dump());
  *out = v->as_int();
}

void ConfigReader::Read(std::string_view key, double* out) {
  const Json* v = Lookup(key);
  if (v == nullptr) return;
  if (!v->is_number())
    return Fail(key, "expected a number, found " + TypeName(*v) + " " + v->Dump());
  *out = v->as_double();
}

void ConfigReader::Read(std::string_view key, bool* out) {
  const Json* v = Lookup(key);
  if (v == nullptr) return;
  if (!v->is_bool())
    return Fail(key, "expected true or false, found " + TypeName(*v) + " " + v->Dump());
  *out = v->as_bool();
}

void ConfigReader::Read(std::string_view key, std::string* out) {
  const Json* v = Lookup(key);
  if (v == nullptr) return;
  if (!v->is_string())
    return Fail(key, "expected a string, found " + TypeName(*v) + " " + v->Dump());
  *out = v->as_string();
}

void ConfigReader::Read(std::string_view key, std::vector<double>* out) {
  const Json* v = Lookup(key);
  if (v == nullptr) return;
  if (!v->is_array()) return Fail(key, "expected a list of numbers, found " + TypeName(*v));
  std::vector<double> values;
  for (const Json& item : v->as_array()) {
    if (!item.is_number()) return Fail(key, "expected a list of numbers, found " + item.Dump());
    values.push_back(item.as_double());
  }
  *out = std::move(values);
}

ConfigReader& ConfigReader::Section(std::string_view key) {
  const Json* v = Lookup(key);
  sections_.push_back(std::make_unique<ConfigReader>(v, Dotted(key)));
  return *sections_.back();
}

bool ConfigReader::Has(std::string_view key) { return Lookup(key) != nullptr; }

Status ConfigReader::Finish() {
  if (!first_error_.ok()) return first_error_;
  for (auto& section : sections_) MAESTRO_RETURN_IF_ERROR(section->Finish());
  if (object_ != nullptr) {
    for (const auto& [key, value] : object_->as_object()) {
      if (!read_.count(key)) return InvalidArgumentError("unknown key '" + Dotted(key) + "'");
    }
  }
  return OkStatus();
}

}  // namespace maestro
