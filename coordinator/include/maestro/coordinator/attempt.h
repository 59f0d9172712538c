// The backend seam: the coordinator decides what runs (an attempt: its trial's config, where it
// reads and writes, its gang shape, its fence) and a backend makes it run and reports what
// becomes of it: started, progress, exited with a status, or lost. docs/architecture.md
// explains the shape; maestro's own worker daemons are the first backend (worker_pool.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/shared/json.h"
#include "maestro/shared/trial_placement.h"

namespace maestro::coordinator {

// One attempt of one trial. Attempts only move forward: a report about any other attempt
// than a trial's current one is stale.
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

// What the coordinator decided to run: one node's share of an attempt. The attempt number is
// its fence: the trainer writes nothing once a later attempt has started (run.output_dir's
// ATTEMPT file).
struct AttemptPlan {
  int64_t trial = 0, attempt = 0, slots = 1, grace_period_ms = 0;
  int64_t cpu_cores = 0, memory_mb = 0;  // per node, as the experiment asks (0: no requirement)
  std::string job;           // pretrain, finetune, linprobe
  Json config;               // the trainer config, without the placed keys
  std::string device;        // run.device
  TrialPlacement placement;  // where it reads and writes
  bool resume = false;       // from its stage's latest checkpoint
  // A multi-node attempt (a gang): this node's rank of `nodes`, and rank 0's rendezvous.
  int64_t node_rank = 0, nodes = 1, master_port = 0;
  std::string master_addr;
};

// A running attempt's progress (rank 0's latest progress record).
struct AttemptProgress {
  int64_t trial = 0, attempt = 0, step = 0, total_steps = 0;
  double loss = 0, lr = 0, images_per_second = 0;
  std::string stage;
};

// How an attempt's processes ended, as its backend saw it.
struct AttemptExit {
  std::string worker, session;
  int64_t trial = 0, attempt = 0;
  int exit_code = 0;  // shared/exit_status.h; -1: killed by `signal`
  int signal = 0;
  std::string result_json, cause;
  bool stopped_by_request = false;
  bool time_limit = false;  // stopped for its Slurm job's time limit: a timeout (one restart)
  std::string actor;  // the credential that reports it
};

// Runs attempts. Not thread-safe: the scheduler calls it under its lock. The backend reports
// back through the scheduler's entry points (for worker daemons: Heartbeat and ReportExit).
class AttemptBackend {
 public:
  virtual ~AttemptBackend() = default;
  // Makes `plans` run on `workers` (plans[i] on workers[i]; node 0 first).
  virtual void Launch(const std::vector<std::string>& workers, std::vector<AttemptPlan> plans) = 0;
  // Stops `ref` on `workers` (SIGTERM, its grace period, SIGKILL); its exit is still reported.
  virtual void Stop(const std::vector<std::string>& workers, const AttemptRef& ref) = 0;
  // `ref` ended (or was given up) on `workers`: nothing more of it is launched; a gang's other
  // nodes are stopped.
  virtual void Release(const std::vector<std::string>& workers, const AttemptRef& ref) = 0;
};

}  // namespace maestro::coordinator
