// maestro-worker's daemon: registers with the coordinator (build and protocol
// version), heartbeats, starts maestro-train children for its assignments, captures their
// output (a log file per attempt under --work-dir, shipped to the coordinator with the
// heartbeats until acknowledged), reports their progress and exit status, and stops them on
// request (SIGTERM, grace period, SIGKILL). When the coordinator restarts or declared it lost,
// it registers again listing the trainers it still runs, so they are adopted, not twinned.
// Runs on one thread; gRPC and prometheus-cpp are private to its translation unit.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::worker {

struct WorkerOptions {
  std::string coordinator = "127.0.0.1:7071";
  std::string id;            // stable identity; empty: the host name
  std::string address;       // where other workers reach this one (rendezvous); empty: host name
  std::string work_dir;      // logs/ and configs/ of the attempts it runs
  std::string train_binary;  // maestro-train
  std::string mpirun = "mpirun";      // starts the ranks of a multi-slot trial (found in PATH)
  int64_t slots = 1;                  // CPU slots: a k-slot trial runs as k mpirun ranks
  int64_t cpu_cores = 0;              // 0: the online CPUs
  int64_t memory_mb = 0;              // 0: physical memory
  std::string metrics_listen;         // host:port of /metrics; empty: none
  int64_t max_log_chunk = 256 << 10;  // bytes of one attempt's log per heartbeat
  // The cluster CA (the coordinator's certificate must verify against it) and this worker's
  // token file (`maestro worker enroll`). No CA: plaintext, for a coordinator run --insecure.
  std::string ca_file, token_file;
  // Where this worker lets trainers write (run.output_dir, checkpoint.dir: the coordinator's
  // runs folder or a parent of it) and read (data.path, classify.pretrained: these and the
  // runs root). An assignment whose paths leave them, symlinks resolved, is refused and the
  // refusal reported; nothing is created outside. runs_root is required.
  std::string runs_root;
  std::vector<std::string> data_roots;
  // One attempt, then exit (the coordinator's Slurm backend starts such a worker as the batch
  // job of each attempt): the worker exits 0 once its attempt has ended and its exit is
  // reported, or 1 when no assignment arrives within assignment_timeout_ms of registering.
  // Inside a Slurm allocation (SLURM_JOB_ID set) a trial of several nodes starts all its ranks
  // from here (launch_plan.h).
  bool one_attempt = false;
  int64_t assignment_timeout_ms = 120000;
};

class WorkerDaemon {
 public:
  // Checks the options (the trainer binary exists, the work folder can be created).
  static Result<std::unique_ptr<WorkerDaemon>> Create(WorkerOptions options);
  ~WorkerDaemon();

  // Runs until `stop` is non-zero, then stops its trainers (SIGTERM; they checkpoint and exit
  // preempted, so the coordinator reschedules them without spending their restart budget),
  // reports their exits and returns 0. `stop` holding SIGUSR2 (a Slurm job's time-limit
  // warning) reports those exits as stopped for the time limit (one restart). Returns 2 when the
  // coordinator refuses it (another protocol version). Prints what it does to `out`.
  int Run(const std::atomic<int>& stop, std::ostream& out);
  int metrics_port() const;

  class Impl;

 private:
  explicit WorkerDaemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace maestro::worker
