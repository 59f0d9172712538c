#include "maestro/worker/trainer_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace maestro::worker {

extern "C" char** environ;

namespace {

// `environ` with the names `env` sets replaced, then `env`.
std::vector<std::string> Environment(const std::vector<std::string>& env) {
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& extra : env) replaced |= extra.substr(0, extra.find('=')) == name;
    if (!replaced) environment.push_back(entry);
  }
  environment.insert(environment.end(), env.begin(), env.end());
  return environment;
}

// A process that ended by a signal or with a status other than completed (0) or preempted (3,
// what every rank answers a stop with).
bool Failed(const ProcessExit& exit) {
  return exit.signal != 0 || (exit.exit_code != 0 && exit.exit_code != 3);
}

}  // namespace

Result<TrainerProcess> TrainerProcess::Start(const std::vector<std::string>& argv,
                                             const std::string& log_path,
                                             const std::vector<std::string>& env) {
  return StartGroup(argv, log_path, env, {{}});
}

Result<TrainerProcess> TrainerProcess::StartGroup(
    const std::vector<std::string>& argv, const std::string& log_path,
    const std::vector<std::string>& env, const std::vector<std::vector<std::string>>& local_env) {
  if (argv.empty()) return InvalidArgumentError("no command");
  if (local_env.empty()) return InvalidArgumentError("no processes to start");
  // Everything the children need is prepared before fork: between fork and exec they may only
  // make async-signal-safe calls (the daemon has gRPC threads).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::vector<std::string>> environments;
  std::vector<std::vector<char*>> envps;
  for (const auto& local : local_env) {
    std::vector<std::string> merged = env;
    merged.insert(merged.end(), local.begin(), local.end());
    environments.push_back(Environment(merged));
  }
  for (auto& environment : environments) {
    envps.emplace_back();
    for (auto& e : environment) envps.back().push_back(e.data());
    envps.back().push_back(nullptr);
  }
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return InternalError("cannot open " + log_path + ": " + std::strerror(errno));
  const pid_t parent = getpid();
  TrainerProcess process;
  for (size_t i = 0; i < envps.size(); ++i) {
    // The leader is not reaped before the others have joined its group, so the group exists.
    const pid_t group = i == 0 ? 0 : process.pids_.front();
    const pid_t pid = fork();
    if (pid < 0) {
      const std::string reason = std::strerror(errno);
      close(log);
      if (!process.pids_.empty()) {
        kill(-process.pids_.front(), SIGKILL);
        for (pid_t started : process.pids_) waitpid(started, nullptr, 0);
      }
      return InternalError("fork: " + reason);
    }
    if (pid == 0) {
      setpgid(0, group);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(137);  // the daemon died before prctl
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      const int null_in = open("/dev/null", O_RDONLY);
      if (null_in >= 0) dup2(null_in, STDIN_FILENO);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);  // the daemon blocks SIGTERM for sigwait
      execve(args[0], args.data(), envps[i].data());
      const char* reason = std::strerror(errno);
      const char prefix[] = "error: cannot execute the trainer: ";
      (void)!write(STDERR_FILENO, prefix, sizeof(prefix) - 1);
      (void)!write(STDERR_FILENO, reason, std::strlen(reason));
      (void)!write(STDERR_FILENO, "\n", 1);
      _exit(127);
    }
    setpgid(pid, i == 0 ? pid : group);  // also from the parent: no race with an early Stop
    process.pids_.push_back(pid);
  }
  close(log);
  process.exits_.resize(process.pids_.size());
  return process;
}

std::optional<ProcessExit> TrainerProcess::Poll() {
  if (exit_) return exit_;
  bool running = false;
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (exits_[i]) continue;
    int status = 0;
    if (waitpid(pids_[i], &status, WNOHANG) != pids_[i]) {
      running = true;
      continue;
    }
    ProcessExit out;
    if (WIFEXITED(status)) {
      out.exit_code = WEXITSTATUS(status);
    } else {
      out.exit_code = -1;
      out.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    exits_[i] = out;
    if (!failure_ && Failed(out)) {
      failure_ = out;
      // The others of a group cannot finish without it (their collectives wait on it).
      if (!stop_deadline_) {
        stop_deadline_ = std::chrono::steady_clock::now() + kFailureGrace;
        kill(-pids_.front(), SIGTERM);
      }
    }
  }
  if (!running) {
    kill(-pids_.front(), SIGKILL);  // anything the trainers left in their group
    exit_ = failure_ ? *failure_ : *exits_.front();
    return exit_;
  }
  if (stop_deadline_ && std::chrono::steady_clock::now() >= *stop_deadline_) Kill();
  return std::nullopt;
}

void TrainerProcess::Stop(std::chrono::milliseconds grace) {
  if (exit_ || stop_deadline_) return;
  stop_deadline_ = std::chrono::steady_clock::now() + grace;
  kill(-pids_.front(), SIGTERM);
}

void TrainerProcess::Kill() {
  if (!exit_) kill(-pids_.front(), SIGKILL);
}

}  // namespace maestro::worker
