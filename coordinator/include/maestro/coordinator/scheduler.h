// The coordinator's brain, without RPC: experiments and their trials over the RocksDB
// store, workers and their heartbeats in memory, placement, restarts and lost workers. The gRPC
// server (service.cpp) translates messages into these calls; tests and the heartbeat benchmark
// can drive it directly.
//
// The scheduler is the only restart authority. Each assignment raises the trial's attempt (one
// synced batch, before the worker hears of it); every report names (trial, attempt), and one
// about any other attempt than the current is refused. A trial's life:
//
//   queued -> assigned -> running -> completed | failed | canceled
//      ^_________|___________|  retryable failure (crash, signal, lost worker) within
//                               max_restarts, or preemption (free): queued again, resumed
//                               from its latest checkpoint on any worker
//
// A pipeline trial runs its stages (pretrain, then each evaluation from the pretraining's final
// checkpoint) one after the other, each stage a sequence of attempts. Heartbeats live in
// memory; only their consequences (a trial running, a worker lost, progress records, log
// bytes) are written. A restarted coordinator expects the workers of its assigned and running
// trials to register again within the worker timeout and adopts what they still run.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/store.h"
#include "maestro/shared/json.h"
#include "maestro/shared/path_roots.h"
#include "maestro/shared/status.h"
#include "maestro/shared/version.h"

namespace maestro::coordinator {

struct SchedulerOptions {
  std::string runs_dir;                  // absolute: trials write under <runs_dir>/trial-<id>/
  // Where datasets (`path`) and pretrained weights (classify.pretrained) may lie: checked
  // lexically (the coordinator opens none of them). Pretrained weights may lie under
  // runs_dir too (an earlier experiment's checkpoints). Empty: no path dataset is accepted.
  PathRoots data_roots;
  int64_t heartbeat_interval_ms = 1000;  // told to workers
  int64_t worker_timeout_ms = 10000;     // no heartbeat for this long: the worker is lost
  int64_t grace_period_ms = 30000;       // SIGTERM -> SIGKILL when a trainer is stopped
};

struct AttemptRef {
  int64_t trial = 0;
  int64_t attempt = 0;
  friend bool operator<(const AttemptRef& a, const AttemptRef& b) {
    return a.trial != b.trial ? a.trial < b.trial : a.attempt < b.attempt;
  }
  friend bool operator==(const AttemptRef& a, const AttemptRef& b) {
    return a.trial == b.trial && a.attempt == b.attempt;
  }
};

struct WorkerRegistration {
  std::string id, build, address;
  int64_t protocol_version = 0;
  int64_t slots = 1, cpu_cores = 0, memory_mb = 0;
  std::vector<AttemptRef> running;  // trainers still running from an earlier session
  std::string actor;                // the credential that registers it (the event log's "by")
};

struct RegisterOutcome {
  std::string session;
  int64_t heartbeat_interval_ms = 0;
  int64_t worker_timeout_ms = 0;
  std::vector<AttemptRef> kill;
};

struct TrialProgressReport {
  int64_t trial = 0, attempt = 0, step = 0, total_steps = 0;
  double loss = 0, lr = 0, images_per_second = 0;
  std::string stage;
};

struct LogPiece {
  int64_t trial = 0, attempt = 0, offset = 0;
  std::string data;
};

struct TrialAssignment {
  int64_t trial = 0, attempt = 0, slots = 1, grace_period_ms = 0;
  std::string job;
  Json config;
  bool resume = false;
  // A multi-node trial: this worker's node rank of `nodes`, and rank 0's rendezvous address.
  int64_t node_rank = 0, nodes = 1, master_port = 0;
  std::string master_addr;
};

struct HeartbeatOutcome {
  bool reregister = false;
  std::vector<TrialAssignment> assignments;
  std::vector<AttemptRef> kill;
  std::vector<LogPiece> log_acks;  // offset: the bytes stored of that attempt; data empty
  std::vector<AttemptRef> current;  // the worker's current attempts after this beat
};

struct TrialExit {
  std::string worker, session;
  int64_t trial = 0, attempt = 0;
  int exit_code = 0;  // -1: killed by `signal`
  int signal = 0;
  std::string result_json, cause;
  bool stopped_by_request = false;
  std::string actor;  // the credential that reports it
};

struct TrialLogs {
  std::string data;
  int64_t next_offset = 0;
  std::string state;
};

// What the metrics exporter reads (service.cpp): a consistent snapshot.
struct SchedulerSnapshot {
  std::map<std::string, int64_t> trials_by_state;
  int64_t workers_alive = 0, workers_lost = 0, slots_total = 0, slots_in_use = 0;
  std::map<std::string, int64_t> restarts_by_cause;  // since this coordinator started
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
  Result<TrialLogs> Logs(int64_t trial, int64_t offset, int64_t max_bytes);
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
                                     const std::vector<TrialProgressReport>& progress,
                                     const std::vector<LogPiece>& logs, int64_t free_slots,
                                     const std::vector<AttemptRef>& held);
  // ABORTED for a session that is not the worker's current one (register again, then report);
  // PERMISSION_DENIED for an attempt this session never held; FAILED_PRECONDITION for a stale
  // attempt it held (ended, or replaced after the worker was declared lost).
  Status ReportExit(const TrialExit& report);

  // Declares workers without a heartbeat for worker_timeout_ms lost (their trials are
  // rescheduled). Called periodically by the server.
  void Tick();
  SchedulerSnapshot Snapshot();

 private:
  struct Worker {
    std::string id, session, build, address;
    int64_t slots = 0, cpu_cores = 0, memory_mb = 0;
    bool alive = false;
    bool confirmed = false;  // registered in this coordinator's life (not just expected)
    std::chrono::steady_clock::time_point last_heartbeat;
    std::set<AttemptRef> running;
    std::vector<AttemptRef> pending_kills;
    std::vector<TrialAssignment> pending_assignments;  // a gang's other nodes, for the next beat
    int64_t beats = 0;                                 // heartbeats of this session
    std::map<AttemptRef, int64_t> assigned_beat;       // the heartbeat whose answer carried it
    // Attempts this session was assigned or adopted (its reports are heard), and those it
    // listed at registration that were not adopted (being killed: logs taken, not stored).
    std::set<AttemptRef> session_attempts, session_refused;
    // Whether this session may report on `ref` (one of the two sets above).
    bool Heard(const AttemptRef& ref) const {
      return session_attempts.count(ref) > 0 || session_refused.count(ref) > 0;
    }
  };
  struct Running {
    TrialProgressReport progress;
    bool has_progress = false;
    int64_t last_stored_step = -1;
  };

  Scheduler(std::unique_ptr<Store> store, SchedulerOptions options);
  Status Load();
  // Cancels, at load, an experiment stored by an older coordinator that this one refuses
  // (a trainer config stored as a file path): its unfinished trials end, with `why`.
  void RefuseStoredExperiment(int64_t id, const std::string& why);
  // The experiment's paths and keys a request may not choose (see CreateExperiment).
  Status CheckTrialInputs(const ExperimentSpec& spec) const;
  // The parsed spec of the experiment that owns `trial` (its "experiment").
  const ExperimentSpec* SpecOf(const Json& trial) const;
  std::vector<std::string> StageNames(const ExperimentSpec& spec) const;
  Result<TrialAssignment> BuildAssignment(const Json& trial, const ExperimentSpec& spec) const;
  bool Fits(const Worker& worker, const ExperimentSpec& spec) const;
  int64_t SlotsUsed(const Worker& worker) const;  // the slots of the trials it runs
  void Schedule(Worker& worker, int64_t free_slots, Change& change, HeartbeatOutcome& out);
  // An attempt ended without a completed stage: restart within budget, or fail. `cause_kind`:
  // crash, signal, worker_lost, retryable.
  void EndAttemptFailed(Json& trial, const std::string& cause_kind, const std::string& cause,
                        bool retryable, bool preempted, Change& change);
  void Requeue(Json& trial);
  void ReleaseAttempt(const Json& trial);
  Json& TrialRef(int64_t id);
  bool IsCurrent(const Json& trial, const std::string& worker, int64_t attempt) const;
  // The workers running a trial's current attempt: its "gang" (node 0 first), or its worker.
  static std::vector<std::string> GangOf(const Json& trial);
  void CommitOrLog(Change change);
  void DeclareLost(Worker& worker, const std::string& why, Change& change);
  int64_t RunningOf(int64_t experiment) const;

  std::unique_ptr<Store> store_;
  SchedulerOptions options_;
  std::mutex mutex_;
  std::map<int64_t, Json> trials_;
  std::map<int64_t, Json> experiments_;
  std::map<int64_t, ExperimentSpec> specs_;
  std::map<std::string, Json> datasets_;
  std::map<std::string, Worker> workers_;
  // The queue: (-priority, trial id) of queued trials.
  std::set<std::pair<int64_t, int64_t>> queue_;
  std::map<int64_t, Running> running_;         // by trial
  std::map<AttemptRef, int64_t> log_lengths_;  // stored bytes per attempt
  std::map<std::string, int64_t> restarts_by_cause_;
  std::vector<double> queue_waits_s_;
};

}  // namespace maestro::coordinator
