#include "maestro/coordinator/slurm_backend.h"

#include <sys/stat.h>

#include <algorithm>
#include <iostream>
#include <set>

#include "maestro/shared/file_util.h"
#include "maestro/shared/security.h"
#include "maestro/shared/sha256.h"
#include "maestro/shared/subprocess.h"

namespace maestro::coordinator {
namespace {

constexpr int64_t kCommandTimeoutMs = 30000;
constexpr int kMaxSubmitFailures = 3;
constexpr size_t kMaxSubmitsPerPoll = 16;
// A submitted job not listed by squeue for this long has ended and been forgotten by slurmctld.
constexpr int64_t kUnlistedMs = 10000;

bool NameChars(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool EnvName(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool ParseId(const std::string& text, int64_t& out) {
  if (text.empty() || text.size() > 15) return false;
  out = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

}  // namespace

Status CheckSlurmOptions(const SlurmOptions& o) {
  if (!NameChars(o.partition)) {
    return InvalidArgumentError("--slurm-partition: '" + o.partition +
                                "' is not a partition name ([A-Za-z0-9_.-])");
  }
  if (!o.account.empty() && !NameChars(o.account)) {
    return InvalidArgumentError("--slurm-account: '" + o.account +
                                "' is not an account name ([A-Za-z0-9_.-])");
  }
  if (o.worker_binary.empty() || o.worker_binary.front() != '/') {
    return InvalidArgumentError("--slurm-worker-binary: an absolute path the nodes see, not '" +
                                o.worker_binary + "'");
  }
  if (!o.ca_file.empty() && o.ca_file.front() != '/') {
    return InvalidArgumentError("the CA file must be an absolute path the nodes see");
  }
  if (o.coordinator.empty() || o.coordinator.find_first_of(" '\"\n") != std::string::npos) {
    return InvalidArgumentError("--slurm-coordinator-address: host:port the nodes reach, not '" +
                                o.coordinator + "'");
  }
  for (const std::string& entry : o.job_env) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || !EnvName(entry.substr(0, eq)) ||
        entry.find('\n') != std::string::npos) {
      return InvalidArgumentError("--slurm-env: '" + entry + "' is not NAME=value");
    }
  }
  if (o.time_limit_minutes <= 0 || o.signal_lead_s < 0 ||
      o.signal_lead_s >= o.time_limit_minutes * 60) {
    return InvalidArgumentError(
        "--slurm-time-limit-min must be positive and --slurm-signal-lead-s shorter than it");
  }
  if (o.poll_interval_ms < 100 || o.max_jobs <= 0) {
    return InvalidArgumentError("--slurm-poll-ms at least 100, --slurm-max-jobs at least 1");
  }
  return OkStatus();
}

std::string SlurmWorkerId(const AttemptRef& ref) {
  return "slurm-" + std::to_string(ref.trial) + "-" + std::to_string(ref.attempt);
}

bool IsSlurmWorkerId(const std::string& id) { return id.rfind("slurm-", 0) == 0; }

std::string ShellQuote(const std::string& word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

JobShape ShapeOf(const AttemptPlan& plan) {
  JobShape shape;
  shape.nodes = std::max<int64_t>(1, plan.nodes);
  shape.tasks_per_node = std::max<int64_t>(1, plan.slots);
  shape.gpu = plan.device.rfind("cuda", 0) == 0;
  // The worker and the ranks share the node's CPUs: cpu_cores is per node.
  shape.cpus_per_task =
      plan.cpu_cores > 0 ? std::max<int64_t>(1, plan.cpu_cores / shape.tasks_per_node) : 0;
  shape.memory_mb = plan.memory_mb;
  return shape;
}

std::string BatchScript(const SlurmOptions& options, const std::string& runs_dir,
                        const std::string& worker, const std::string& work_dir,
                        const std::string& token_file, int64_t slots) {
  std::string script =
      "#!/bin/sh\n"
      "# Written by maestro-coordinator (--backend slurm) for one attempt: its worker runs the\n"
      "# attempt and exits. Only the operator's settings and numbers are in this file.\n";
  for (const std::string& entry : options.job_env) script += "export " + ShellQuote(entry) + "\n";
  std::vector<std::string> argv = {options.worker_binary,
                                   "--one-attempt",
                                   "--id",
                                   worker,
                                   "--coordinator",
                                   options.coordinator,
                                   "--work-dir",
                                   work_dir,
                                   "--runs-root",
                                   runs_dir,
                                   "--slots",
                                   std::to_string(std::max<int64_t>(1, slots))};
  for (const std::string& root : options.data_roots) {
    argv.insert(argv.end(), {"--data-root", root});
  }
  if (!options.ca_file.empty()) argv.insert(argv.end(), {"--ca", options.ca_file});
  if (!token_file.empty()) argv.insert(argv.end(), {"--token-file", token_file});
  script += "exec";
  for (const std::string& word : argv) script += " " + ShellQuote(word);
  return script + "\n";
}

std::vector<std::string> SbatchArgv(const SlurmOptions& options, const std::string& job_name,
                                    const JobShape& shape, const std::string& work_dir,
                                    const std::string& script) {
  std::vector<std::string> argv = {options.sbatch,
                                   "--parsable",
                                   "--no-requeue",
                                   "--job-name=" + job_name,
                                   "--partition=" + options.partition,
                                   "--nodes=" + std::to_string(shape.nodes),
                                   "--ntasks-per-node=" + std::to_string(shape.tasks_per_node),
                                   "--time=" + std::to_string(options.time_limit_minutes),
                                   "--signal=B:USR2@" + std::to_string(options.signal_lead_s),
                                   "--output=" + work_dir + "/slurm-%j.out",
                                   "--chdir=" + work_dir};
  if (!options.account.empty()) argv.push_back("--account=" + options.account);
  if (shape.gpu) argv.push_back("--gres=gpu:" + std::to_string(shape.tasks_per_node));
  if (shape.cpus_per_task > 0) {
    argv.push_back("--cpus-per-task=" + std::to_string(shape.cpus_per_task));
  }
  if (shape.memory_mb > 0) argv.push_back("--mem=" + std::to_string(shape.memory_mb));
  argv.push_back(script);
  return argv;
}

std::vector<SlurmJobRow> ParseSqueue(const std::string& text) {
  std::vector<SlurmJobRow> rows;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    const size_t a = line.find('|');
    const size_t b = a == std::string::npos ? a : line.find('|', a + 1);
    if (b == std::string::npos) continue;
    SlurmJobRow row{line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    while (!row.state.empty() && (row.state.back() == ' ' || row.state.back() == '\r')) {
      row.state.pop_back();
    }
    int64_t id = 0;
    if (!ParseId(row.id, id)) continue;  // an array or heterogeneous job's id: not ours
    rows.push_back(std::move(row));
  }
  return rows;
}

SlurmEnd EndOfState(const std::string& state) {
  // squeue prints "CANCELLED" and sacct "CANCELLED by 0": the first word decides.
  const std::string word = state.substr(0, state.find(' '));
  static const std::set<std::string> kRunning = {
      "PENDING",   "RUNNING",     "COMPLETING",   "CONFIGURING", "SUSPENDED",
      "REQUEUED",  "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",    "SIGNALING",
      "STAGE_OUT", "STOPPED",     "RESV_DEL_HOLD"};
  if (kRunning.count(word)) return SlurmEnd::kNotEnded;
  if (word == "PREEMPTED") return SlurmEnd::kPreempted;
  if (word == "TIMEOUT" || word == "DEADLINE") return SlurmEnd::kTimeout;
  if (word == "NODE_FAIL" || word == "BOOT_FAIL") return SlurmEnd::kNodeFailure;
  return SlurmEnd::kFailed;
}

SlurmBackend::SlurmBackend(WorkerPool& pool, SlurmOptions options, std::string runs_dir,
                           const Clock& clock)
    : pool_(pool),
      options_(std::move(options)),
      runs_dir_(std::move(runs_dir)),
      // Jobs are named per runs folder: two coordinators of one user never take each other's.
      tag_(Sha256Hex(runs_dir_).substr(0, 8)),
      clock_(clock) {}

std::string SlurmBackend::WorkDir(const AttemptRef& ref) const {
  return runs_dir_ + "/trial-" + std::to_string(ref.trial) + "/slurm/attempt-" +
         std::to_string(ref.attempt);
}

std::string SlurmBackend::JobName(const AttemptRef& ref) const {
  return "maestro-" + tag_ + "-" + std::to_string(ref.trial) + "-" + std::to_string(ref.attempt);
}

SlurmBackend::Job SlurmBackend::NewJob(const std::string& worker, const AttemptRef& ref,
                                       const AttemptPlan* plan) const {
  Job job;
  job.ref = ref;
  job.worker = worker;
  job.name = JobName(ref);
  if (plan != nullptr) {
    job.shape = ShapeOf(*plan);
    job.slots = plan->slots;
    job.grace_period_ms = plan->grace_period_ms;
  }
  return job;
}

void SlurmBackend::Launch(const std::vector<std::string>& workers, std::vector<AttemptPlan> plans) {
  if (workers.empty() || plans.empty()) return;
  Job job = NewJob(workers[0], {plans[0].trial, plans[0].attempt}, &plans[0]);
  pool_.Launch({workers[0]}, {std::move(plans[0])});
  std::lock_guard<std::mutex> lock(mutex_);
  jobs_[job.ref] = std::move(job);
}

void SlurmBackend::Stop(const std::vector<std::string>& workers, const AttemptRef& ref) {
  pool_.Stop(workers, ref);
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = jobs_.find(ref); it != jobs_.end() && !it->second.stop) {
    it->second.stop = true;
    it->second.stop_ms = clock_.SteadyMs();
  }
}

void SlurmBackend::Release(const std::vector<std::string>& workers, const AttemptRef& ref) {
  pool_.Release(workers, ref);
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = jobs_.find(ref); it != jobs_.end() && !it->second.released) {
    it->second.released = true;
    it->second.released_ms = clock_.SteadyMs();
  }
}

void SlurmBackend::Recover(const std::string& worker, const AttemptRef& ref,
                           const AttemptPlan* plan) {
  Job job = NewJob(worker, ref, plan);
  job.recovered = true;
  job.relaunch = plan != nullptr;
  if (plan != nullptr) pool_.Launch({worker}, {*plan});
  std::lock_guard<std::mutex> lock(mutex_);
  jobs_[ref] = std::move(job);
}

int64_t SlurmBackend::Active() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const auto& [ref, job] : jobs_) n += job.released ? 0 : 1;
  return n;
}

std::vector<std::string> SlurmBackend::Environment() const {
  // What sbatch (and through it the job: --export=ALL) inherits: the tools' own settings, never
  // the coordinator's whole environment.
  return FilteredEnvironment(
      {"PATH", "LD_LIBRARY_PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "SLURM_CONF", "TMPDIR"},
      {"LC_"});
}

void SlurmBackend::Cancel(const std::string& id, const std::string& signal) {
  std::vector<std::string> argv = {options_.scancel};
  if (!signal.empty()) argv.insert(argv.end(), {"--signal=" + signal, "--full"});
  argv.push_back(id);
  auto r = RunCommand(argv, Environment(), kCommandTimeoutMs);
  if (!r.ok() || !r->ok()) {
    std::cerr << "maestro-coordinator: warning: scancel " << (signal.empty() ? "" : signal + " ")
              << id << ": " << (r.ok() ? r->Describe() : r.status().ToString()) << std::endl;
  }
}

Result<std::string> SlurmBackend::Submit(const Job& job) {
  const std::string dir = WorkDir(job.ref);
  MAESTRO_RETURN_IF_ERROR(MakeDirectories(dir));
  // The folder holds the credential: the job's user only.
  if (chmod(dir.c_str(), 0700) != 0) return UnavailableError("chmod " + dir);
  std::string token_file;
  if (options_.mint) {
    // Valid for the job's time limit and a day of waiting in the queue.
    const int64_t lifetime_ms = (options_.time_limit_minutes * 60 + 86400) * 1000;
    MAESTRO_ASSIGN_OR_RETURN(std::string token, options_.mint(job.worker, lifetime_ms));
    token_file = dir + "/worker.token";
    MAESTRO_RETURN_IF_ERROR(security::WriteSecretFile(token_file, token + "\n"));
  }
  const std::string script = dir + "/job.sh";
  MAESTRO_RETURN_IF_ERROR(WriteFileAtomic(
      script, BatchScript(options_, runs_dir_, job.worker, dir, token_file, job.slots), 0700));
  MAESTRO_ASSIGN_OR_RETURN(CommandResult r,
                           RunCommand(SbatchArgv(options_, job.name, job.shape, dir, script),
                                      Environment(), kCommandTimeoutMs));
  if (!r.ok()) return UnavailableError("sbatch: " + r.Describe());
  std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
  int64_t parsed = 0;
  if (!ParseId(id, parsed)) return UnavailableError("sbatch printed no job id: '" + r.out + "'");
  return id;
}

SlurmBackend::PollResult SlurmBackend::Poll() {
  PollResult result;
  const int64_t now = clock_.SteadyMs();
  bool list = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    list = now >= next_queue_ms_;
    for (const auto& [ref, job] : jobs_) list = list || job.recovered;
    if (list) next_queue_ms_ = now + options_.poll_interval_ms;
  }
  // 1. The queue: every job of this user, finished ones included (as long as slurmctld keeps
  //    them, MinJobAge).
  std::map<std::string, SlurmJobRow> rows;  // by job name
  bool listed = false;
  if (list) {
    auto r =
        RunCommand({options_.squeue, "--me", "--noheader", "--states=all", "--format=%i|%j|%T"},
                   Environment(), kCommandTimeoutMs);
    if (r.ok() && r->ok()) {
      listed = true;
      for (SlurmJobRow& row : ParseSqueue(r->out)) {
        if (row.name.rfind("maestro-" + tag_ + "-", 0) != 0) continue;
        auto& kept = rows[row.name];
        // A name listed twice (cannot happen for our jobs, but be exact): the newest id.
        int64_t a = 0, b = 0;
        if (kept.id.empty() || (ParseId(row.id, a) && ParseId(kept.id, b) && a > b)) kept = row;
      }
    } else {
      std::cerr << "maestro-coordinator: warning: squeue: "
                << (r.ok() ? r->Describe() : r.status().ToString()) << std::endl;
    }
  }
  // 2. Jobs squeue no longer lists: sacct, where accounting is kept, says how they ended.
  std::vector<std::string> unlisted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (listed) {
      for (auto& [ref, job] : jobs_) {
        auto row = rows.find(job.name);
        if (row != rows.end()) {
          job.id = row->second.id;
          job.state = row->second.state;
          job.recovered = false;
          job.relaunch = false;
        } else if (job.recovered && job.relaunch) {
          job.recovered = false;  // never submitted (or forgotten): submitted below
          job.relaunch = false;
          job.id.clear();
        } else if (job.recovered) {
          job.recovered = false;  // ended while this coordinator was down
          job.id = "unknown";
          job.state = "GONE";
        } else if (!job.id.empty() && EndOfState(job.state) == SlurmEnd::kNotEnded &&
                   now - job.submitted_ms > kUnlistedMs) {
          unlisted.push_back(job.id);
          job.state = "GONE";
        }
      }
    }
  }
  std::map<std::string, std::string> accounted;  // id -> state
  for (const std::string& id : unlisted) {
    auto r = RunCommand({options_.sacct, "--noheader", "--parsable2", "--allocations",
                         "--format=State", "--jobs=" + id},
                        Environment(), kCommandTimeoutMs);
    if (r.ok() && r->ok()) {
      const std::string state = r->out.substr(0, r->out.find('\n'));
      if (!state.empty()) accounted[id] = state;
    }
  }
  // 3. What to do now.
  std::vector<Job> to_submit;
  std::vector<std::pair<std::string, std::string>> to_cancel;  // (id, signal)
  std::vector<std::string> to_revoke;                          // workers whose credentials end
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [ref, job] : jobs_) {
      if (auto a = accounted.find(job.id); a != accounted.end()) job.state = a->second;
    }
    std::set<int64_t> trials_in_queue;  // trials with a job Slurm has not ended
    for (const auto& [ref, job] : jobs_) {
      if (!job.id.empty() && EndOfState(job.state) == SlurmEnd::kNotEnded) {
        trials_in_queue.insert(ref.trial);
      }
    }
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& job = it->second;
      const bool submitted = !job.id.empty();
      const SlurmEnd end = submitted ? EndOfState(job.state) : SlurmEnd::kNotEnded;
      if (submitted && end != SlurmEnd::kNotEnded) {
        if (!job.released && !job.gone_reported) {
          job.gone_reported = true;
          result.gone.push_back({job.ref, job.worker, job.id, job.state, end});
        }
        if (job.released) {
          to_revoke.push_back(job.worker);
          result.finished_workers.push_back(job.worker);
          it = jobs_.erase(it);
          continue;
        }
      } else if (!submitted && job.released) {
        to_revoke.push_back(job.worker);
        result.finished_workers.push_back(job.worker);
        it = jobs_.erase(it);
        continue;
      } else if (!submitted && job.stop) {
        // Canceled before it was submitted: nothing to run; the scheduler ends the attempt.
        if (!job.gone_reported) {
          job.gone_reported = true;
          result.gone.push_back({job.ref, job.worker, "", "CANCELLED", SlurmEnd::kFailed});
        }
      } else if (!submitted && !job.recovered && job.submit_failures < kMaxSubmitFailures &&
                 trials_in_queue.count(job.ref.trial) == 0 &&
                 to_submit.size() < kMaxSubmitsPerPoll) {
        // A trial's next job waits until its last one has left the queue.
        to_submit.push_back(job);
      } else if (submitted && job.stop && !job.stop_sent) {
        // Canceled: the worker stops its trainer at the grace signal (a job still waiting for
        // its nodes just leaves the queue).
        job.stop_sent = true;
        to_cancel.push_back({job.id, job.state == "PENDING" ? "" : "TERM"});
      } else if (submitted && !job.cancel_sent &&
                 ((job.released && now - job.released_ms > job.grace_period_ms + 30000) ||
                  (job.stop_sent && now - job.stop_ms > job.grace_period_ms + 30000))) {
        // Released (its worker reported) or stopped, and still there after the grace period.
        job.cancel_sent = true;
        to_cancel.push_back({job.id, ""});
      }
      ++it;
    }
  }
  for (const Job& job : to_submit) {
    auto id = Submit(job);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(job.ref);
    if (it == jobs_.end()) {  // released meanwhile: cancel what was submitted
      if (id.ok()) to_cancel.push_back({*id, ""});
      to_revoke.push_back(job.worker);
      continue;
    }
    Job& kept = it->second;
    if (id.ok()) {
      kept.id = *id;
      kept.state = "PENDING";
      kept.submitted_ms = clock_.SteadyMs();
      result.events.push_back(Json(Json::Object{{"kind", "slurm_job_submitted"},
                                                {"trial", job.ref.trial},
                                                {"attempt", job.ref.attempt},
                                                {"job_id", *id},
                                                {"job_name", job.name},
                                                {"worker", job.worker}}));
      if (kept.released) to_cancel.push_back({*id, ""});
      continue;
    }
    ++kept.submit_failures;
    std::cerr << "maestro-coordinator: error: trial " << job.ref.trial << " attempt "
              << job.ref.attempt << ": " << id.status().ToString() << std::endl;
    if (kept.submit_failures >= kMaxSubmitFailures && !kept.gone_reported) {
      kept.gone_reported = true;
      kept.id = "none";
      kept.state = "SUBMIT_FAILED: " + id.status().message();
      result.gone.push_back({job.ref, job.worker, "", kept.state, SlurmEnd::kFailed});
    }
  }
  for (const auto& [id, signal] : to_cancel) Cancel(id, signal);
  if (options_.revoke) {
    for (const std::string& worker : to_revoke) options_.revoke(worker);
  }
  return result;
}

}  // namespace maestro::coordinator
