// The coordinator's brain, without RPC: a thin facade that holds the lock over its parts: the
// experiment catalogue (catalogue.h), the trials and their lifecycle (trial_record.h,
// lifecycle.h), placement (placement.h), the worker daemons as the attempt backend
// (worker_pool.h over attempt.h's seam) and the trainers' logs (log_store.h), all over the
// RocksDB store. The gRPC server (service.cpp) translates messages into these calls; tests and
// the heartbeat benchmark drive it directly, on a simulated clock if they like.
//
// The scheduler is the only restart authority. Each assignment raises the trial's attempt (one
// synced batch, before the worker hears of it); every report names (trial, attempt), and one
// about any other attempt than the current is refused. A retryable failure (crash, signal,
// lost worker) within max_restarts, a preemption or a lost assignment (free) queue a trial
// again, to resume from its latest checkpoint on any worker.
//
// A pipeline trial runs its stages (pretrain, then each evaluation from the pretraining's final
// checkpoint) one after the other, each stage a sequence of attempts. Heartbeats live in
// memory; only their consequences (a trial running, a worker lost, progress records, log
// bytes) are written. A restarted coordinator expects the workers of its assigned and running
// trials to register again within the worker timeout and adopts what they still run.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "maestro/coordinator/attempt.h"
#include "maestro/coordinator/catalogue.h"
#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/log_store.h"
#include "maestro/coordinator/placement.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/coordinator/slurm_backend.h"
#include "maestro/coordinator/store.h"
#include "maestro/coordinator/trial_record.h"
#include "maestro/coordinator/worker_pool.h"
#include "maestro/shared/clock.h"
#include "maestro/shared/json.h"
#include "maestro/shared/path_roots.h"
#include "maestro/shared/status.h"
#include "maestro/shared/version.h"

namespace maestro::coordinator {

class Lifecycle;

struct SchedulerOptions {
  std::string runs_dir;                  // absolute: trials write under <runs_dir>/trial-<id>/
  // Where datasets (`path`) and pretrained weights (classify.pretrained) may lie: checked
  // lexically (the coordinator opens none of them). Pretrained weights may lie under
  // runs_dir too (an earlier experiment's checkpoints). Empty: no path dataset is accepted.
  PathRoots data_roots;
  int64_t heartbeat_interval_ms = 1000;  // told to workers
  int64_t worker_timeout_ms = 10000;     // no heartbeat for this long: the worker is lost
  int64_t grace_period_ms = 30000;       // SIGTERM -> SIGKILL when a trainer is stopped
  // Leases, timeouts and recorded times; nullptr: SystemClock(). Outlives the scheduler.
  const Clock* clock = nullptr;
  // Enabled (a partition set): attempts run as Slurm batch jobs (slurm_backend.h), placed by
  // Tick() as soon as they are queued, instead of on registered worker daemons.
  SlurmOptions slurm;
};

// What the metrics exporter reads (service.cpp): a consistent snapshot.
struct SchedulerSnapshot {
  std::map<std::string, int64_t> trials_by_state;
  int64_t workers_alive = 0, workers_lost = 0, slots_total = 0, slots_in_use = 0;
  std::map<std::string, int64_t> restarts_by_cause;  // since this coordinator started
  int64_t workers_declared_lost = 0;                 // since this coordinator started
  std::vector<double> queue_waits_s;                 // assignments since the last snapshot
  struct Running {
    int64_t experiment = 0, trial = 0, step = 0;
    double loss = 0, lr = 0, images_per_second = 0;
    bool has_progress = false;
  };
  std::vector<Running> running;
};

class Scheduler {
 public:
  // Loads the state; trials found assigned or running wait for their workers to come back.
  static Result<std::unique_ptr<Scheduler>> Open(std::unique_ptr<Store> store,
                                                 SchedulerOptions options);
  ~Scheduler();

  // --- users ---
  // `tree`: an experiment file's tree with configs inlined. INVALID_ARGUMENT naming the key for
  // a bad file, an empty grid or resources no registered worker can offer; NOT_FOUND for an
  // unregistered dataset.
  // `actor`, here and below: the credential making the call, recorded as "by" in the events.
  Result<CreatedExperiment> CreateExperiment(const Json& tree, const std::string& idempotency_key,
                                             const std::string& actor = "");
  std::vector<Json> ListExperiments();
  Result<std::pair<Json, std::vector<Json>>> DescribeExperiment(int64_t id);
  // The actor that created it ("" before actors were recorded). NOT_FOUND for an unknown id.
  Result<std::string> ExperimentCreator(int64_t id);
  // (queued trials canceled, running trials told to stop).
  Result<std::pair<int64_t, int64_t>> CancelExperiment(int64_t id, const std::string& actor = "");
  // Continues a sweep after errors: `id`'s failed and canceled trials queued again under its
  // settings, each with a fresh restart budget, resuming from its stage's latest checkpoint (a
  // trial shared by identity with another experiment is queued once, for both); a canceled
  // experiment is active again. The number queued. NOT_FOUND for an unknown id,
  // FAILED_PRECONDITION for an experiment refused at load.
  Result<int64_t> ContinueExperiment(int64_t id, const std::string& actor = "");
  // Adds `count` trials to a random search (its next draws; the earlier ones are unchanged),
  // queued at once: the trial ids added (a cell another experiment holds is shared, as at
  // creation). FAILED_PRECONDITION for a grid; INVALID_ARGUMENT beyond the size cap; ABORTED
  // when extended concurrently.
  Result<std::vector<int64_t>> ExtendExperiment(int64_t id, int64_t count,
                                                const std::string& actor = "");
  Result<TrialLogs> Logs(int64_t trial, int64_t offset, int64_t max_bytes);
  // A trial's record and {stage name: its trainer config without the placed keys}.
  Result<std::pair<Json, Json>> TrialDetail(int64_t trial);
  // Progress records ({trial, attempt, step, ...}) of `experiment`'s trials, or of `trial`
  // alone when `experiment` is 0, in (trial, attempt, step) order from `page_token` (""
  // first), at most `max_records`: (records, the next page's token, "" after the last).
  // NOT_FOUND for an unknown experiment or trial, INVALID_ARGUMENT for a malformed token.
  Result<std::pair<std::vector<Json>, std::string>> MetricHistory(int64_t experiment, int64_t trial,
                                                                  const std::string& page_token,
                                                                  int64_t max_records);
  std::vector<Json> ListWorkers();
  Status RegisterDataset(const std::string& name, const Json& dataset,
                         const std::string& actor = "");
  std::vector<Json> ListDatasets();
  std::vector<Json> Events(int64_t from = 0);

  // --- workers ---
  // FAILED_PRECONDITION for another protocol version; INVALID_ARGUMENT for an empty id or no
  // slots.
  Result<RegisterOutcome> RegisterWorker(const WorkerRegistration& registration);
  // `held`: every attempt the worker holds (running, or exit not yet reported); an attempt
  // assigned by an earlier heartbeat's answer and not held never reached it. PERMISSION_DENIED,
  // with nothing changed, when progress or logs name an attempt this session never held (not
  // assigned to it, not listed at its registration).
  Result<HeartbeatOutcome> Heartbeat(const std::string& worker, const std::string& session,
                                     const std::vector<AttemptProgress>& progress,
                                     const std::vector<LogPiece>& logs, int64_t free_slots,
                                     const std::vector<AttemptRef>& held);
  // ABORTED for a session that is not the worker's current one (register again, then report);
  // PERMISSION_DENIED for an attempt this session never held; FAILED_PRECONDITION for a stale
  // attempt it held (ended, or replaced after the worker was declared lost).
  Status ReportExit(const AttemptExit& report);

  // Declares workers without a heartbeat for worker_timeout_ms lost (their trials are
  // rescheduled). Called periodically by the server.
  void Tick();
  // The Slurm backend (nothing without it): one round with Slurm (its commands run outside the
  // lock), the attempts of jobs that ended unreported ended, queued trials submitted. Called
  // periodically by the server, on a thread of its own.
  void PollBackend();
  bool HasSlurmBackend() const { return slurm_ != nullptr; }
  SchedulerSnapshot Snapshot();

 private:
  // How an attempt ended without completing its stage.
  enum class AttemptEnd {
    kRetryable,  // restarted within the budget (charged), else failed
    kPermanent,  // failed
    kPreempted,  // queued again, free
    kLost,       // the assignment never reached its worker: queued again, free
  };
  // A running trial's latest progress (memory only; its records are stored).
  struct Running {
    AttemptProgress progress;
    bool has_progress = false;
    int64_t last_stored_step = -1;
  };

  Scheduler(std::unique_ptr<Store> store, SchedulerOptions options);
  Status Load();
  // Cancels, at load, an experiment stored by an older coordinator that this one refuses
  // (a trainer config stored as a file path): its unfinished trials end, with `why`.
  void RefuseStoredExperiment(int64_t id, const std::string& why);
  // The parsed spec of the experiment whose settings `trial` runs under.
  const ExperimentSpec* SpecOf(const TrialRecord& trial) const;
  ResourceUse UseOf(const WorkerState& worker) const;
  // Places queued trials on `worker` (node 0 of a gang), up to `free_slots`.
  void Schedule(WorkerState& worker, int64_t free_slots, Lifecycle& life);
  // The Slurm backend: each queued trial (within max_concurrent_trials and the backend's job
  // limit) becomes an attempt of its own worker id, launched as a batch job.
  void ScheduleOnSlurm(Lifecycle& life);
  // The plan of `trial`'s current attempt on its registered dataset (with the Slurm backend,
  // for every node at once: one worker starts all the ranks). FAILED_PRECONDITION when the
  // dataset is no longer registered; PlanAttempt's errors.
  Result<AttemptPlan> PlanOf(const TrialRecord& trial, const ExperimentSpec& spec) const;
  // FAILED_PRECONDITION for experiment `id` refused at load (no spec to run it by).
  Status CheckRunnable(int64_t id, const Json& experiment) const;
  // Assigns `trial`'s next attempt to `gang` (dequeued already) and plans it; a plan that
  // cannot be made fails the trial (nullopt).
  std::optional<AttemptPlan> AssignAttempt(TrialRecord& trial, const ExperimentSpec& spec,
                                           const std::vector<std::string>& gang, Lifecycle& life);
  // Jobs that ended before their workers reported: their attempts end as Slurm says.
  void EndGoneAttempts(const SlurmBackend::PollResult& polled, Lifecycle& life, Change& change);
  // An attempt ended without a completed stage: canceled if that was asked, else as `end`
  // says. `cause_kind`: crash, signal, worker_lost, retryable, permanent, preempted, ...
  void EndAttemptFailed(TrialRecord& trial, const std::string& cause_kind, const std::string& cause,
                        AttemptEnd end, Lifecycle& life);
  // The queue follows the trials' states: a trial moved to queued is enqueued, one moved out
  // of it dequeued (the lifecycle changes records only).
  void Enqueue(const TrialRecord& trial);
  void Dequeue(const TrialRecord& trial);
  // Under the lock: `created`'s trials taken into memory and queued (new ones; shared failed
  // or canceled ones again, under created.id's settings), committed as `actor`.
  Status TakeTrials(const CreatedExperiment& created, const std::string& actor);
  // Its current attempt ends on its workers (the backend forgets it) and in the running set.
  void ReleaseAttempt(const TrialRecord& trial);
  bool IsCurrent(const TrialRecord& trial, const std::string& worker, int64_t attempt) const;
  // An asha trial that reported its metric at the rung it trained to.
  static bool ReachedItsRung(const TrialRecord& trial);
  // An asha trial's attempt completed at its rung's budget: its metric (the final evaluation's
  // searcher.metric) recorded, then stopped or, at the top rung, completed, as the searcher
  // says, and the promotions it answers with applied. A result without a finite metric, or
  // stopped at another step than the rung's, fails the trial.
  void EndAtRung(TrialRecord& trial, const ExperimentSpec& spec, const std::string& stage_name,
                 Json summary, const std::string& worker, Lifecycle& life);
  // `event` told to experiment `experiment_id`'s search method, with its trials as they stand.
  SearchActions AskSearcher(int64_t experiment_id, const TrialEvent& event);
  // The stopped trials `actions` resumes: each one rung further, queued (ahead of lower rungs).
  void ApplyResumes(int64_t experiment_id, const SearchActions& actions, Lifecycle& life);
  // Both: `event` told, the promotions it answers with applied (for events that stop nothing).
  void TellSearcher(int64_t experiment_id, const TrialEvent& event, Lifecycle& life);
  void CommitOrLog(Change change);
  void DeclareLost(WorkerState& worker, const std::string& why, Lifecycle& life, Change& change);

  std::unique_ptr<Store> store_;
  SchedulerOptions options_;
  const Clock* clock_;
  std::mutex mutex_;
  ExperimentCatalogue catalogue_;
  std::map<int64_t, TrialRecord> trials_;
  // The queue: (-priority, -rung, trial id) of queued trials: a trial promoted to a higher
  // rung goes before the lower rungs' trials of its priority (asha.h).
  std::set<std::tuple<int64_t, int64_t, int64_t>> queue_;
  // Each experiment's search method, made when it is first asked (it keeps no state: asha.h).
  std::map<int64_t, std::unique_ptr<SearchMethod>> searchers_;
  std::map<int64_t, Running> running_;  // by trial
  WorkerPool workers_;  // maestro's worker daemons (the sessions of a Slurm job's too)
  std::unique_ptr<SlurmBackend> slurm_;  // --backend slurm, else null
  AttemptBackend* backend_ = nullptr;    // slurm_, or the worker pool
  TrialLogStore logs_;
  std::map<std::string, int64_t> restarts_by_cause_;
  int64_t workers_declared_lost_ = 0;
  std::vector<double> queue_waits_s_;
};

}  // namespace maestro::coordinator
