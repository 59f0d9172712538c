// maestro-coordinator: the coordinator daemon: experiments validated, expanded and
// stored; trials placed on worker daemons, restarted from their checkpoints when they fail,
// rescheduled when a worker is lost.
//
//   maestro-coordinator --db DIR --credentials CLUSTER_DIR [--listen 127.0.0.1:7071] [--runs DIR]
//                       [--backend slurm --slurm-partition P [--slurm-account A] ...]
//
// Runs until SIGTERM or SIGINT. All state is in the RocksDB store under --db: a coordinator
// killed with SIGKILL and started again on the same folder carries on where it stopped.
#include <unistd.h>

#include <climits>
#include <iostream>

#include "maestro/coordinator/service.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/stop_signals.h"

int main(int argc, char** argv) {
  maestro::coordinator::CoordinatorOptions options;
  std::string runs = "runs";
  int64_t heartbeat_ms = 1000;
  double worker_timeout_s = 10, grace_s = 30;
  maestro::FlagParser flags(
      "maestro-coordinator",
      "The coordinator daemon: experiments (validated against the trainer's schema,\n"
      "expanded into trials, stored in RocksDB, one synced batch per change), placed on\n"
      "maestro-worker daemons, restarted from their checkpoints when they fail. Runs until\n"
      "SIGTERM or SIGINT; started again on the same --db it carries on where it stopped.");
  flags.Add("db", &options.db_dir, "state folder (created when missing)");
  flags.Add("listen", &options.listen,
            "gRPC address host:port (0.0.0.0:PORT for other machines; port 0: any free port, "
            "printed at start)");
  flags.Add("runs", &runs,
            "where trials write (trial-<id>/<stage>/: checkpoints, metrics, result.json); "
            "workers must see the same path (a shared file system across machines)");
  std::vector<std::string> data_roots;
  flags.Add("data-root", &data_roots,
            "a folder registered datasets (`path`) and pretrained weights (classify.pretrained) "
            "may lie under, as workers see it; compared as written, symlinks are the workers' "
            "to resolve (none: only datasets served by maestro-data can be registered)");
  flags.Add("metrics-listen", &options.metrics_listen,
            "host:port for Prometheus /metrics, a loopback address only (empty: none; port 0: "
            "any free port)");
  flags.Add("heartbeat-ms", &heartbeat_ms, "heartbeat interval told to workers");
  flags.Add("worker-timeout-s", &worker_timeout_s,
            "a worker silent this long is lost: its trials restart elsewhere from checkpoints");
  flags.Add("grace-s", &grace_s, "SIGTERM to SIGKILL when a trainer is stopped (cancel)");
  flags.Add("credentials", &options.credentials_dir,
            "the cluster folder of `maestro cluster init` (coordinator.crt/key, ca.crt, "
            "data-token.key, admin-token.json): TLS, and every call must carry a token");
  flags.Add("insecure", &options.insecure,
            "serve plaintext without authentication (only on a loopback --listen address)");
  double data_token_lifetime_s = 600;
  flags.Add("data-token-lifetime-s", &data_token_lifetime_s,
            "lifetime of a trainer's data token (renewed with heartbeats after a third of it)");
  std::string backend = "workers";
  auto& slurm = options.scheduler.slurm;
  flags.Add("backend", &backend,
            "where attempts run: workers (maestro-worker daemons that register) or slurm (each "
            "attempt one batch job: docs/slurm.md)");
  std::string slurm_partition, slurm_worker = maestro::SiblingProgram("maestro-worker");
  flags.Add("slurm-partition", &slurm_partition,
            "--backend slurm: the partition every job is submitted to (required)");
  flags.Add("slurm-account", &slurm.account,
            "--backend slurm: the account jobs are charged to (default: the user's)");
  flags.Add("slurm-coordinator-address", &slurm.coordinator,
            "--backend slurm: host:port the nodes reach this coordinator at (default: "
            "--listen, unless it is a wildcard address)");
  flags.Add("slurm-worker-binary", &slurm_worker,
            "--backend slurm: maestro-worker as the nodes see it (default: the one next to "
            "this program)");
  flags.Add(
      "slurm-env", &slurm.job_env,
      "--backend slurm: NAME=value exported in every job (repeat; OMPI_MCA_btl_tcp_if_include "
      "for mpirun across nodes, say)");
  flags.Add("slurm-time-limit-min", &slurm.time_limit_minutes,
            "--backend slurm: each job's time limit; at the limit the attempt checkpoints and is "
            "restarted (one restart)");
  flags.Add("slurm-signal-lead-s", &slurm.signal_lead_s,
            "--backend slurm: seconds before the time limit that the job is told to checkpoint "
            "(--signal=B:USR2@N)");
  flags.Add("slurm-poll-ms", &slurm.poll_interval_ms,
            "--backend slurm: how often squeue is asked about the jobs");
  flags.Add("slurm-max-jobs", &slurm.max_jobs,
            "--backend slurm: attempts submitted to Slurm at once (the rest wait here)");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  if (backend != "workers" && backend != "slurm") {
    std::cerr << "maestro-coordinator: --backend: workers or slurm, not '" << backend << "'\n";
    return 2;
  }
  if ((backend == "slurm") != !slurm_partition.empty()) {
    std::cerr << "maestro-coordinator: --backend slurm and --slurm-partition go together\n";
    return 2;
  }
  if (backend == "slurm") {
    slurm.partition = slurm_partition;
    slurm.worker_binary = maestro::AbsolutePath(slurm_worker);
    if (slurm.coordinator.empty()) {
      if (options.listen.rfind("0.0.0.0:", 0) == 0 || options.listen.rfind("[::]:", 0) == 0) {
        std::cerr << "maestro-coordinator: --listen " << options.listen
                  << " is a wildcard: give --slurm-coordinator-address\n";
        return 2;
      }
      slurm.coordinator = options.listen;
    }
    if (slurm.coordinator.size() >= 2 &&
        slurm.coordinator.compare(slurm.coordinator.size() - 2, 2, ":0") == 0) {
      std::cerr << "maestro-coordinator: the nodes need a fixed port: give --listen HOST:PORT "
                   "or --slurm-coordinator-address\n";
      return 2;
    }
    if (!options.credentials_dir.empty()) {
      slurm.ca_file = maestro::AbsolutePath(options.credentials_dir + "/ca.crt");
    }
  }
  if (options.db_dir.empty()) {
    std::cerr << "maestro-coordinator: --db is required (see --help)\n";
    return 2;
  }
  if (heartbeat_ms <= 0 || worker_timeout_s * 1000 <= static_cast<double>(heartbeat_ms) ||
      grace_s < 0) {
    std::cerr << "maestro-coordinator: need --heartbeat-ms > 0, --worker-timeout-s above the "
                 "heartbeat interval and --grace-s >= 0\n";
    return 2;
  }
  if (!maestro::MakeDirectories(runs).ok()) {
    std::cerr << "maestro-coordinator: cannot create the runs folder " << runs << "\n";
    return 2;
  }
  char resolved[PATH_MAX];
  if (realpath(runs.c_str(), resolved) == nullptr) {
    std::cerr << "maestro-coordinator: cannot resolve " << runs << "\n";
    return 2;
  }
  options.scheduler.runs_dir = resolved;
  std::vector<std::string> root_forms;
  for (const std::string& given : data_roots) {
    const std::string root = maestro::AbsolutePath(given);  // relative: the current folder's
    root_forms.push_back(root);
    // Where this machine sees it, its symlinks resolved, too (`maestro dataset register`
    // sends resolved paths).
    char resolved_root[PATH_MAX];
    if (realpath(root.c_str(), resolved_root) != nullptr) root_forms.push_back(resolved_root);
  }
  auto roots = maestro::PathRoots::Make(root_forms, "--data-root", false);
  if (!roots.ok()) {
    std::cerr << "maestro-coordinator: " << roots.status().message() << "\n";
    return 2;
  }
  options.scheduler.data_roots = *roots;
  if (backend == "slurm") slurm.data_roots = root_forms;
  options.scheduler.heartbeat_interval_ms = heartbeat_ms;
  options.scheduler.worker_timeout_ms = static_cast<int64_t>(worker_timeout_s * 1000);
  options.scheduler.grace_period_ms = static_cast<int64_t>(grace_s * 1000);
  if (data_token_lifetime_s < 3) {
    std::cerr << "maestro-coordinator: --data-token-lifetime-s: at least 3\n";
    return 2;
  }
  options.data_token_lifetime_ms = static_cast<int64_t>(data_token_lifetime_s * 1000);
  const sigset_t stop = maestro::BlockStopSignals();  // before the server's threads start
  auto server = maestro::coordinator::CoordinatorServer::Start(options);
  if (!server.ok()) {
    std::cerr << "maestro-coordinator: " << server.status().ToString() << "\n";
    return server.status().code() == maestro::StatusCode::kUnavailable ? 3 : 2;
  }
  if (options.insecure) {
    std::cout << "WARNING: --insecure: plaintext, no authentication; anyone who can reach "
              << options.listen << " may submit, cancel and register work" << std::endl;
  }
  if (backend == "slurm") {
    std::cout << "backend: slurm, partition " << slurm.partition
              << (slurm.account.empty() ? "" : ", account " + slurm.account) << ", jobs reach "
              << slurm.coordinator << std::endl;
  }
  std::cout << "state in " << options.db_dir << ", runs in " << resolved << ", data roots "
            << options.scheduler.data_roots.Describe() << "; listening on port "
            << (*server)->port();
  if ((*server)->metrics_port() != 0)
    std::cout << ", metrics on port " << (*server)->metrics_port();
  std::cout << std::endl;
  std::cout << "stopping on signal " << maestro::AwaitStopSignal(stop) << std::endl;
  (*server)->Shutdown();
  return 0;
}
