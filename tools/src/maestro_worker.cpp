// maestro-worker: the worker daemon. Registers with maestro-coordinator, runs the
// maestro-train children it is assigned, ships their logs and progress, reports their exits.
//
//   maestro-worker --coordinator 127.0.0.1:7071 --ca ca.crt --token-file worker.token
//                  --work-dir DIR [--id NAME] [--slots N]
//
// Runs until SIGTERM or SIGINT: its trainers then checkpoint and stop (preempted), and the
// coordinator reschedules them without spending their restart budget.
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/stop_signals.h"
#include "maestro/worker/daemon.h"

int main(int argc, char** argv) {
  maestro::worker::WorkerOptions options;
  options.train_binary = maestro::SiblingProgram("maestro-train");
  maestro::FlagParser flags(
      "maestro-worker",
      "The worker daemon: registers with maestro-coordinator (with its build and protocol\n"
      "version), heartbeats, runs the maestro-train children it is assigned (one per slot),\n"
      "captures their output (kept under --work-dir/logs and shipped to the coordinator:\n"
      "`maestro trial logs ID -f`), reports progress and exit statuses, and stops trainers on\n"
      "request (SIGTERM, grace period, SIGKILL). Its children die with it. Runs until SIGTERM\n"
      "or SIGINT, which stops its trainers at a checkpoint (they are rescheduled).");
  flags.Add("coordinator", &options.coordinator, "the coordinator, host:port");
  flags.Add("id", &options.id, "this worker's stable identity (default: the host name)");
  flags.Add("work-dir", &options.work_dir, "folder for the trainers' logs and configs");
  flags.Add("address", &options.address,
            "address other workers reach this one at (rank 0 of a multi-node trial serves the "
            "rendezvous there; default: the host name)");
  flags.Add("slots", &options.slots, "trial slots (CPU trainers run at once)");
  flags.Add("cpu-cores", &options.cpu_cores, "CPU cores offered (0: the online CPUs)");
  flags.Add("memory-mb", &options.memory_mb, "memory offered in MB (0: physical memory)");
  flags.Add("train-binary", &options.train_binary, "the maestro-train program to run");
  flags.Add("mpirun", &options.mpirun,
            "Open MPI's mpirun, which starts the ranks of a trial of several slots");
  flags.Add("runs-root", &options.runs_root,
            "required: the folder trainers may write under (the coordinator's --runs folder or "
            "a folder above it); an assignment whose output or checkpoint folder leaves it, "
            "symlinks resolved, is refused");
  flags.Add("data-root", &options.data_roots,
            "a folder trainers may read datasets and pretrained weights from (besides "
            "--runs-root); an assignment reading elsewhere is refused");
  flags.Add("metrics-listen", &options.metrics_listen,
            "host:port for Prometheus /metrics, a loopback address only (empty: none; port 0: "
            "any free port)");
  if (const char* ca = std::getenv("MAESTRO_CA")) options.ca_file = ca;
  if (const char* token = std::getenv("MAESTRO_TOKEN_FILE")) options.token_file = token;
  flags.Add("ca", &options.ca_file,
            "the cluster CA certificate (`maestro cluster init`): the coordinator must present a "
            "certificate it signed (default: $MAESTRO_CA; none: plaintext, for a coordinator "
            "run --insecure)");
  flags.Add("token-file", &options.token_file,
            "this worker's token, from `maestro worker enroll ID` (a file of mode 0600; "
            "default: $MAESTRO_TOKEN_FILE)");
  flags.Add("one-attempt", &options.one_attempt,
            "run one attempt, then exit (what the coordinator's Slurm backend starts as each "
            "attempt's batch job): SIGUSR1 and SIGTERM stop it as a preemption (free), SIGUSR2 "
            "(the job's `--signal=B:USR2@N` time-limit warning) as a timeout (one restart); a "
            "trial of several nodes starts all its ranks from here (mpirun or srun)");
  double assignment_timeout_s = 120;
  flags.Add("assignment-timeout-s", &assignment_timeout_s,
            "with --one-attempt: exit 1 when no assignment arrives this long after registering");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  options.assignment_timeout_ms = static_cast<int64_t>(assignment_timeout_s * 1000);
  // Before any thread starts. One attempt in a Slurm job: Slurm's signals stop it too.
  const sigset_t stop_signals = options.one_attempt ? maestro::BlockStopSignals({SIGUSR1, SIGUSR2})
                                                    : maestro::BlockStopSignals();
  auto daemon = maestro::worker::WorkerDaemon::Create(options);
  if (!daemon.ok()) {
    std::cerr << "maestro-worker: " << daemon.status().ToString() << "\n";
    return 2;
  }
  if ((*daemon)->metrics_port() != 0) {
    std::cout << "metrics on port " << (*daemon)->metrics_port() << std::endl;
  }
  std::atomic<int> stop{0};
  std::thread waiter([&] { stop = maestro::AwaitStopSignal(stop_signals); });
  waiter.detach();
  return (*daemon)->Run(stop, std::cout);
}
