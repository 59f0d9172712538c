// Runs a short-lived program (sbatch, squeue, scancel, scontrol) and collects what it prints:
// argv goes to execve as it is (no shell ever parses it), the environment is the caller's
// list, standard input is /dev/null, and a program that outlives its timeout is killed
// (SIGKILL) and reported so. Safe in a process with threads (posix_spawn, signal mask and
// dispositions reset in the child).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro {

struct CommandResult {
  int exit_code = -1;  // -1: killed by `signal`
  int signal = 0;
  bool timed_out = false;
  std::string out, err;  // each at most 1 MiB (the rest is read and dropped)
  bool ok() const { return exit_code == 0; }
  // "exit 1: <stderr's last line>", for error messages.
  std::string Describe() const;
};

// `argv[0]` is looked up in this process's PATH when it has no '/'. `env`: NAME=value entries, the
// whole environment of the program. UNAVAILABLE when it cannot be started (not found, say).
Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env, int64_t timeout_ms);

// This process's environment, only the entries whose names are in `names` or start with one
// of `prefixes` (what a child may inherit, nothing else).
std::vector<std::string> FilteredEnvironment(const std::vector<std::string>& names,
                                             const std::vector<std::string>& prefixes);

}  // namespace maestro
