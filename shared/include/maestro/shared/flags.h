// A small command-line flag parser for maestro's programs: `--name value` or `--name=value`,
// typed targets, defaults shown in --help, and errors that name the flag. Standard library
// only, so the LibTorch-only build has it too. Not thread-safe; build and parse on one thread.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro {

class FlagParser {
 public:
  // `summary` is the first paragraph of --help.
  FlagParser(std::string program, std::string summary);

  // Registers a flag writing into `target`; the target's current value is the default.
  void Add(const std::string& name, int64_t* target, const std::string& help);
  void Add(const std::string& name, double* target, const std::string& help);
  void Add(const std::string& name, std::string* target, const std::string& help);
  // A bool flag: `--name` sets true, `--name=false` / `--name=true` set either.
  void Add(const std::string& name, bool* target, const std::string& help);
  // A repeatable flag: each `--name value` appends a value.
  void Add(const std::string& name, std::vector<std::string>* target, const std::string& help);

  // Parses argv[1..]. INVALID_ARGUMENT names an unknown flag, a missing value or a value of
  // the wrong type. `--help` / `-h` stops parsing and sets help_requested().
  Status Parse(int argc, const char* const* argv);
  bool help_requested() const { return help_requested_; }
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::variant<int64_t*, double*, std::string*, bool*, std::vector<std::string>*> target;
    std::string help;
    std::string default_text;
  };
  Status Assign(const Flag& flag, const std::string& value) const;

  std::string program_, summary_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

// Parses flags; on --help prints usage and exits 0, on an error prints it with a hint and
// exits 2. For main() functions.
void ParseFlagsOrExit(FlagParser& parser, int argc, const char* const* argv);

}  // namespace maestro
