// A trainer child of the worker daemon: maestro-train started in its own process group with
// its output appended to a log file, stopped with SIGTERM then SIGKILL after a grace period,
// reaped without blocking. The child dies with the daemon (PR_SET_PDEATHSIG), so a worker
// killed with SIGKILL leaves no trainer behind to clash with the replacement the coordinator
// starts elsewhere. A GPU trial of several slots is one such child of several processes (one
// per local rank, torchrun-style) in one group: it ends when all have ended, and the first that
// fails (a signal, or an exit other than 0 or 3) takes the others down with it. Not
// thread-safe: one thread (the one that started it) drives it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::worker {

struct ProcessExit {
  int exit_code = 0;  // -1 when killed by a signal
  int signal = 0;
};

class TrainerProcess {
 public:
  // Starts `argv` (argv[0]: the executable's path) with stdout and stderr appended to
  // `log_path`, this process's environment plus `env` ("NAME=value", replacing same names).
  // INTERNAL when fork fails; an exec failure shows as exit 127 with the reason in the log.
  static Result<TrainerProcess> Start(const std::vector<std::string>& argv,
                                      const std::string& log_path,
                                      const std::vector<std::string>& env = {});
  // `argv` once per entry of `local_env`, each process with `env` and then its own entries, all
  // in the first one's process group.
  static Result<TrainerProcess> StartGroup(const std::vector<std::string>& argv,
                                           const std::string& log_path,
                                           const std::vector<std::string>& env,
                                           const std::vector<std::vector<std::string>>& local_env);

  // The first process's (the group's leader).
  pid_t pid() const { return pids_.front(); }
  // Non-blocking: the exit once every process has ended (reaped), else nullopt: the first
  // failure's when one failed, else the first process's.
  std::optional<ProcessExit> Poll();
  // SIGTERM to its process group now, SIGKILL once `grace` has passed (Poll escalates).
  void Stop(std::chrono::milliseconds grace);
  bool stopping() const { return stop_deadline_.has_value(); }
  // SIGKILL to its process group.
  void Kill();

 private:
  // How long the others of a group get to end after one failed, before SIGKILL.
  static constexpr std::chrono::seconds kFailureGrace{3};

  std::vector<pid_t> pids_;
  std::vector<std::optional<ProcessExit>> exits_;  // per process, once reaped
  std::optional<ProcessExit> failure_;             // the first failing process's
  std::optional<std::chrono::steady_clock::time_point> stop_deadline_;
  std::optional<ProcessExit> exit_;
};

}  // namespace maestro::worker
