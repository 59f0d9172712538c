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

Result<TrainerProcess> TrainerProcess::Start(const std::vector<std::string>& argv,
                                             const std::string& log_path,
                                             const std::vector<std::string>& env) {
  if (argv.empty()) return InvalidArgumentError("no command");
  // Everything the child needs is prepared before fork: between fork and exec it may only
  // make async-signal-safe calls (the daemon has gRPC threads).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& extra : env) replaced |= extra.substr(0, extra.find('=')) == name;
    if (!replaced) environment.push_back(entry);
  }
  environment.insert(environment.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return InternalError("cannot open " + log_path + ": " + std::strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return InternalError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(137);  // the daemon died before prctl
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    const int null_in = open("/dev/null", O_RDONLY);
    if (null_in >= 0) dup2(null_in, STDIN_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the daemon blocks SIGTERM for sigwait
    execve(args[0], args.data(), envp.data());
    const char* reason = std::strerror(errno);
    const char prefix[] = "error: cannot execute the trainer: ";
    (void)!write(STDERR_FILENO, prefix, sizeof(prefix) - 1);
    (void)!write(STDERR_FILENO, reason, std::strlen(reason));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(127);
  }
  close(log);
  setpgid(pid, pid);  // also from the parent: no race with an early Stop
  TrainerProcess process;
  process.pid_ = pid;
  return process;
}

std::optional<ProcessExit> TrainerProcess::Poll() {
  if (exit_) return exit_;
  int status = 0;
  const pid_t done = waitpid(pid_, &status, WNOHANG);
  if (done == pid_) {
    ProcessExit out;
    if (WIFEXITED(status)) {
      out.exit_code = WEXITSTATUS(status);
    } else {
      out.exit_code = -1;
      out.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    kill(-pid_, SIGKILL);  // anything the trainer left in its group
    exit_ = out;
    return exit_;
  }
  if (stop_deadline_ && std::chrono::steady_clock::now() >= *stop_deadline_) Kill();
  return std::nullopt;
}

void TrainerProcess::Stop(std::chrono::milliseconds grace) {
  if (exit_ || stop_deadline_) return;
  stop_deadline_ = std::chrono::steady_clock::now() + grace;
  kill(-pid_, SIGTERM);
}

void TrainerProcess::Kill() {
  if (!exit_) kill(-pid_, SIGKILL);
}

}  // namespace maestro::worker
