// Slurm as an attempt backend (attempt.h): `maestro-coordinator --backend slurm`. Each attempt
// becomes one batch job, submitted with sbatch `--no-requeue` (a new attempt is always a new
// job, and a trial's next job is submitted only once its last one has left the queue, so a
// trial never has two jobs). The job runs one `maestro-worker --one-attempt` on its first node;
// that worker registers under the attempt's own worker id (SlurmWorkerId) with a credential
// minted for it alone, receives the attempt's plan through its heartbeats, starts the ranks
// (mpirun or srun over the allocation for several nodes), reports progress, logs and the exit
// exactly as a standing worker does, and exits. The backend watches the queue (squeue, and
// sacct for jobs squeue has forgotten) and reports attempts whose jobs ended before their
// worker reported (PREEMPTED, TIMEOUT, NODE_FAIL, a worker that died) to the scheduler.
//
// The job's files live in <runs>/trial-<T>/slurm/attempt-<A>/ (the nodes see the runs folder
// at the same path): job.sh, worker.token (0600, the folder 0700), the worker's logs and
// slurm-<jobid>.out. job.sh is written from the operator's settings and numbers only: no text
// of an experiment ever reaches it, and every word in it is single-quoted by construction.
// Nothing secret is on a command line or in an environment (scontrol show job, squeue and ps
// show those): the token is a file the worker reads.
//
// Thread safety: Launch, Stop, Release, Recover and Active run under the scheduler's lock and
// only record intents; Poll runs the Slurm commands on the caller's thread without that lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "maestro/coordinator/attempt.h"
#include "maestro/coordinator/worker_pool.h"
#include "maestro/shared/clock.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

struct SlurmOptions {
  std::string partition;      // required: the operator's partition (experiments cannot choose)
  std::string account;        // empty: the user's default account
  std::string worker_binary;  // maestro-worker, at a path the nodes see
  std::string coordinator;    // host:port the nodes reach this coordinator at
  std::string ca_file;        // the cluster CA, as the nodes see it; empty: plaintext
  std::vector<std::string> data_roots;  // the workers' --data-root
  std::vector<std::string> job_env;     // NAME=value exported in every job (OMPI_MCA_...)
  int64_t time_limit_minutes = 24 * 60;
  int64_t signal_lead_s = 120;  // --signal=B:USR2@N: the time-limit warning
  int64_t poll_interval_ms = 2000;
  int64_t max_jobs = 100;  // attempts in Slurm's queue at once
  std::string sbatch = "sbatch", squeue = "squeue", scancel = "scancel", sacct = "sacct";
  // A credential for one attempt's worker id, valid `lifetime_ms` (its text); `revoke` ends
  // every credential of that worker id (also after a coordinator restart). Unset: the jobs
  // get none (a coordinator run --insecure).
  std::function<Result<std::string>(const std::string& worker, int64_t lifetime_ms)> mint;
  std::function<void(const std::string& worker)> revoke;

  bool enabled() const { return !partition.empty(); }
};

// INVALID_ARGUMENT naming the flag: a partition or account with characters outside
// [A-Za-z0-9_.-], a relative worker binary or CA path, an environment entry that is not
// NAME=value, limits out of range.
Status CheckSlurmOptions(const SlurmOptions& options);

// "slurm-<trial>-<attempt>": the worker id of an attempt run as a Slurm job. Reserved: no
// standing worker may be enrolled under such a name.
std::string SlurmWorkerId(const AttemptRef& ref);
bool IsSlurmWorkerId(const std::string& id);

// `word` as one single-quoted shell word ('it'\''s').
std::string ShellQuote(const std::string& word);

// What one attempt asks Slurm for.
struct JobShape {
  int64_t nodes = 1, tasks_per_node = 1;
  bool gpu = false;           // --gres=gpu:<tasks_per_node>
  int64_t cpus_per_task = 0;  // 0: Slurm's default
  int64_t memory_mb = 0;      // per node; 0: Slurm's default
};
JobShape ShapeOf(const AttemptPlan& plan);

// The batch script of attempt `worker` (files in `work_dir`): exports, then `exec` of the
// worker.
std::string BatchScript(const SlurmOptions& options, const std::string& runs_dir,
                        const std::string& worker, const std::string& work_dir,
                        const std::string& token_file, int64_t slots);
// sbatch's argv for it (run without a shell).
std::vector<std::string> SbatchArgv(const SlurmOptions& options, const std::string& job_name,
                                    const JobShape& shape, const std::string& work_dir,
                                    const std::string& script);

// One line of `squeue --noheader --states=all --format=%i|%j|%T`.
struct SlurmJobRow {
  std::string id, name, state;
};
std::vector<SlurmJobRow> ParseSqueue(const std::string& text);

// How a job state ends an attempt its worker did not report.
enum class SlurmEnd {
  kNotEnded,     // PENDING, RUNNING, COMPLETING, CONFIGURING, SUSPENDED, REQUEUED, ...
  kPreempted,    // PREEMPTED: queued again, free
  kTimeout,      // TIMEOUT, DEADLINE: one restart
  kNodeFailure,  // NODE_FAIL, BOOT_FAIL: like a lost worker, one restart
  kFailed,       // COMPLETED, FAILED, CANCELLED, OUT_OF_MEMORY, or gone: one restart
};
SlurmEnd EndOfState(const std::string& state);

// An attempt whose job ended before its worker reported the attempt's exit.
struct AttemptGone {
  AttemptRef ref;
  std::string worker, job_id, state;
  SlurmEnd end = SlurmEnd::kFailed;
};

class SlurmBackend : public AttemptBackend {
 public:
  // `runs_dir`: the scheduler's. `clock` outlives the backend.
  SlurmBackend(WorkerPool& pool, SlurmOptions options, std::string runs_dir, const Clock& clock);

  // AttemptBackend, under the scheduler's lock: the pool's part (the plan waits for the
  // attempt's worker to register), and the job's (submitted, signalled, canceled by Poll).
  void Launch(const std::vector<std::string>& workers, std::vector<AttemptPlan> plans) override;
  void Stop(const std::vector<std::string>& workers, const AttemptRef& ref) override;
  void Release(const std::vector<std::string>& workers, const AttemptRef& ref) override;

  // At load, under the scheduler's lock: attempt `ref` was active on `worker`. Its job is
  // looked for in the queue by name at the next poll. `plan`: the attempt had not started
  // (its plan waits in the pool again); when no job of it is found, one is submitted. Without
  // a plan, a job not found has ended: reported gone.
  void Recover(const std::string& worker, const AttemptRef& ref, const AttemptPlan* plan);
  // Jobs not released (queued, running, or still to submit).
  int64_t Active() const;

  struct PollResult {
    std::vector<AttemptGone> gone;
    std::vector<std::string> finished_workers;  // jobs gone for good: forget these workers
    std::vector<Json> events;                   // slurm_job_submitted, slurm_job_refused, ...
  };
  // One round with Slurm: submissions, signals and cancellations due, and (every poll
  // interval) the queue. Without the scheduler's lock.
  PollResult Poll();

 private:
  struct Job {
    AttemptRef ref;
    std::string worker, name, id, state;
    JobShape shape;
    int64_t slots = 1, grace_period_ms = 0;
    bool recovered = false;  // at load: its id is to be found in the queue
    bool relaunch = false;   // recovered, not started: submit when not found
    bool released = false, stop = false, stop_sent = false, cancel_sent = false;
    bool gone_reported = false;
    int64_t submitted_ms = 0, released_ms = 0, stop_ms = 0;
    int submit_failures = 0;
  };
  // A job of `worker`'s attempt `ref`; its shape from `plan` when there is one.
  Job NewJob(const std::string& worker, const AttemptRef& ref, const AttemptPlan* plan) const;
  std::string WorkDir(const AttemptRef& ref) const;
  std::string JobName(const AttemptRef& ref) const;
  // Writes the job's folder, script and credential and runs sbatch: the job id.
  Result<std::string> Submit(const Job& job);
  std::vector<std::string> Environment() const;
  void Cancel(const std::string& id, const std::string& signal);

  WorkerPool& pool_;
  const SlurmOptions options_;
  const std::string runs_dir_, tag_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::map<AttemptRef, Job> jobs_;
  int64_t next_queue_ms_ = 0;
};

}  // namespace maestro::coordinator
