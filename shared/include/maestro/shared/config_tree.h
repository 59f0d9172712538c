// Config files as trees, and typed reading of them.
//
// A config file is YAML (JSON is YAML too) loaded into a Json tree: mappings become objects,
// sequences arrays, quoted scalars strings, and plain scalars are typed as YAML 1.2's core
// schema types them (integers, floats, true/false, null; anything else a string). Builds
// without yaml-cpp (the LibTorch-only build) read JSON configs and say so for YAML ones.
// ConfigReader then reads typed fields, naming the dotted key of every wrong type and of
// every key nobody read. Not thread-safe; values are.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro {

// Parses YAML/JSON text (a JSON object document is read as JSON exactly). INVALID_ARGUMENT with
// `source` and the position on bad syntax.
Result<Json> ParseConfigText(std::string_view text, const std::string& source);
// Reads and parses a file. NOT_FOUND when it does not exist.
Result<Json> LoadConfigFile(const std::string& path);

// Types one plain scalar as the YAML core schema does ("3" -> 3, "1e-4" -> 0.0001,
// "true" -> true, "null" -> null, "[1, 2]" -> array via flow syntax, else a string).
// INVALID_ARGUMENT for a number longer than kMaxNumberChars or beyond a double's range.
inline constexpr size_t kMaxNumberChars = 64;
Result<Json> ParseConfigScalar(std::string_view text);

// Sets the dotted key "a.b.c" of `tree` to `value`, creating the objects on the path.
// INVALID_ARGUMENT for an empty part or a path step that is not an object.
Status SetConfigValue(Json& tree, std::string_view key, Json value);
// The value at dotted key "a.b.c" of `tree`; null when a step is missing or not a mapping.
const Json* FindConfigValue(const Json& tree, std::string_view key);
// Removes the dotted key "a.b.c" from `tree` when it is there.
void EraseConfigValue(Json& tree, std::string_view key);
// Applies one override "a.b.c=value" (value typed by ParseConfigScalar) with SetConfigValue.
// INVALID_ARGUMENT when there is no '=' or SetConfigValue refuses the key.
Status ApplyConfigOverride(Json& tree, std::string_view assignment);

// Typed, strict reading of one object of a config tree.
class ConfigReader {
 public:
  // `object` may be null (an absent section: every field keeps its default).
  // `path` is the dotted prefix used in messages ("" at the root).
  ConfigReader(const Json* object, std::string path);

  // Each Read leaves `out` alone when the key is absent, and records the first error (a
  // wrong type names the key, the expected type and the value found).
  void Read(std::string_view key, int64_t* out);
  void Read(std::string_view key, double* out);  // accepts integers too
  void Read(std::string_view key, bool* out);
  void Read(std::string_view key, std::string* out);
  void Read(std::string_view key, std::vector<double>* out);
  // A nested object; its errors flow into this reader's Finish(). The reference lives as
  // long as this reader.
  ConfigReader& Section(std::string_view key);
  // Whether `key` is present (it then counts as read).
  bool Has(std::string_view key);

  // Records an error about `key` found by the caller's own validation.
  void Fail(std::string_view key, const std::string& message);

  // The first error from this reader and its sections, else INVALID_ARGUMENT for the first
  // key that was never read ("unknown key 'optim.warmup_epoch'"), else OK.
  Status Finish();

 private:
  std::string Dotted(std::string_view key) const;
  const Json* Lookup(std::string_view key);

  const Json* object_;
  std::string path_;
  std::set<std::string, std::less<>> read_;
  Status first_error_;
  std::vector<std::unique_ptr<ConfigReader>> sections_;
};

}  // namespace maestro
