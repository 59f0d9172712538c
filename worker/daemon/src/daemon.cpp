#include "maestro/worker/daemon.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <limits.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <thread>
#include <vector>

#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/exit_status.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/grpc_auth.h"
#include "maestro/shared/grpc_status.h"
#include "maestro/shared/ids.h"
#include "maestro/shared/json.h"
#include "maestro/shared/metrics_http.h"
#include "maestro/shared/path_roots.h"
#include "maestro/shared/progress_record.h"
#include "maestro/shared/security.h"
#include "maestro/shared/trial_placement.h"
#include "maestro/shared/version.h"
#include "maestro/worker/launch_plan.h"
#include "maestro/worker/progress_reader.h"
#include "maestro/worker/trainer_process.h"

namespace maestro::worker {

namespace pb = maestro::coordinator::v1;
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::system_clock::time_point Deadline(int64_t ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

// A TCP port free on this machine now (the kernel's pick for port 0), for the rendezvous of
// one node's local ranks; 29500 (torchrun's default) if none can be had.
int64_t FreeLocalPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 29500;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int64_t port = 29500;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

// One attempt this worker runs (or ran, until its exit is reported and its log acknowledged).
struct Child {
  int64_t trial = 0, attempt = 0;
  std::string job, log_path, output_dir;
  std::string data_token_path;  // the trainer's data token (0600), rewritten when renewed
  int64_t slots = 1;
  std::vector<int64_t> slot_ids;  // which of the worker's slots (a GPU trial's GPUs)
  std::optional<TrainerProcess> process;
  std::optional<ProcessExit> exit;
  Clock::time_point exited_at;
  bool stop_requested = false;  // by the coordinator (cancel, stale attempt)
  bool time_limit = false;      // stopped for the Slurm job's time limit (SIGUSR2)
  int64_t parsed = 0;           // log bytes read for error lines
  std::string partial;          // an unfinished line
  std::string progress_path;    // the ranks' progress records (progress_record.h)
  int64_t progress_read = 0;    // bytes of it read
  ProgressReader progress;
  bool progress_warned = false;  // a bad record was reported (once per attempt)
  std::string last_error;
  int64_t acked = 0;  // log bytes the coordinator stored
  std::optional<ProcessExit> spawn_failure;
};

}  // namespace

class WorkerDaemon::Impl {
 public:
  explicit Impl(WorkerOptions options) : options_(std::move(options)) {}

  Status Init() {
    if (options_.id.empty()) options_.id = HostName("worker");
    if (options_.slots <= 0) return InvalidArgumentError("--slots: at least 1");
    if (options_.cpu_cores <= 0) options_.cpu_cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (options_.memory_mb <= 0) {
      options_.memory_mb = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
                           static_cast<int64_t>(sysconf(_SC_PAGE_SIZE)) / (1 << 20);
    }
    if (access(options_.train_binary.c_str(), X_OK) != 0) {
      return NotFoundError("the trainer " + options_.train_binary +
                           " is not an executable file (--train-binary)");
    }
    if (options_.work_dir.empty()) return InvalidArgumentError("--work-dir is required");
    if (options_.runs_root.empty()) {
      return InvalidArgumentError(
          "--runs-root is required: the folder trainers may write under (the coordinator's "
          "--runs folder, or a folder above it)");
    }
    MAESTRO_RETURN_IF_ERROR(MakeDirectories(options_.runs_root).WithContext("--runs-root"));
    // Relative roots are the current folder's (the flags' reader's expectation).
    options_.runs_root = AbsolutePath(options_.runs_root);
    for (std::string& root : options_.data_roots) root = AbsolutePath(root);
    MAESTRO_ASSIGN_OR_RETURN(write_roots_,
                             PathRoots::Make({options_.runs_root}, "--runs-root", true));
    MAESTRO_ASSIGN_OR_RETURN(read_roots_,
                             PathRoots::Make(options_.data_roots, "--data-root", true));
    read_roots_.Add(write_roots_);
    if (options_.mpirun.find('/') == std::string::npos) {  // execve needs a path
      const char* path = std::getenv("PATH");
      const std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
      for (size_t start = 0; start <= dirs.size();) {
        const size_t end = std::min(dirs.find(':', start), dirs.size());
        const std::string candidate = dirs.substr(start, end - start) + "/" + options_.mpirun;
        if (access(candidate.c_str(), X_OK) == 0) {
          options_.mpirun = candidate;
          break;
        }
        start = end + 1;
      }
    }
    slurm_allocation_ = options_.one_attempt && std::getenv("SLURM_JOB_ID") != nullptr;
    if (options_.assignment_timeout_ms <= 0) {
      return InvalidArgumentError("--assignment-timeout-s: must be positive");
    }
    MAESTRO_RETURN_IF_ERROR(MakeDirectories(options_.work_dir + "/logs"));
    MAESTRO_RETURN_IF_ERROR(MakeDirectories(options_.work_dir + "/configs"));
    MAESTRO_RETURN_IF_ERROR(MakeDirectories(options_.work_dir + "/secrets"));
    lease_file_ = options_.work_dir + "/lease";
    MAESTRO_RETURN_IF_ERROR(WriteFileAtomic(lease_file_,
                                            "renewed at every answer of the "
                                            "coordinator; trainers check it\n"));
    chmod((options_.work_dir + "/secrets").c_str(), 0700);
    if (!options_.ca_file.empty()) {
      char resolved[PATH_MAX];
      if (realpath(options_.ca_file.c_str(), resolved) == nullptr) {
        return NotFoundError("--ca: " + options_.ca_file + " does not exist");
      }
      options_.ca_file = resolved;  // the trainers run in other folders
    }
    auth_ = ClientAuth{options_.ca_file, options_.token_file, ""};
    MAESTRO_ASSIGN_OR_RETURN(auto credentials, MakeChannelCredentials(auth_, options_.coordinator));
    if (!options_.metrics_listen.empty()) {
      RegisterBuildInfo(*registry_, "maestro-worker");
      MAESTRO_ASSIGN_OR_RETURN(exposer_, ServeMetrics(options_.metrics_listen, registry_));
    }
    // Reconnect within a second of the coordinator coming back (gRPC's default backoff grows to
    // minutes): a restarted coordinator waits only its worker timeout for re-registrations.
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 300);
    channel_ = grpc::CreateCustomChannel(options_.coordinator, credentials, arguments);
    stub_ = pb::Coordinator::NewStub(channel_);
    return OkStatus();
  }

  int metrics_port() const { return MetricsPort(exposer_.get()); }

  int Run(const std::atomic<int>& stop, std::ostream& out) {
    out_ = &out;
    auto next_heartbeat = Clock::now();
    bool shutting_down = false;
    Clock::time_point shutdown_deadline;
    while (true) {
      if (stop.load() != 0 && !shutting_down) {
        shutting_down = true;
        const bool time_limit = stop.load() == SIGUSR2;
        // The grace period, then time to report the exits.
        shutdown_deadline =
            Clock::now() + std::chrono::milliseconds(grace_ms_) + std::chrono::seconds(30);
        Say("stopping on signal " + std::to_string(stop.load()) +
            (time_limit ? " (the Slurm job's time limit is near)" : "") + ": sending SIGTERM to " +
            std::to_string(LiveChildren()) + " trainer(s)");
        for (auto& [key, child] : children_) {
          if (child.process && !child.exit) {
            child.time_limit = time_limit;
            child.process->Stop(std::chrono::milliseconds(grace_ms_));
          }
        }
      }
      PollChildren();
      CheckLease();
      if (session_.empty()) {
        if (int refused = Register(); refused != 0) return refused;
      }
      if (!session_.empty() && Clock::now() >= next_heartbeat) {
        Heartbeat(shutting_down);
        // After a failure, try again at once: the call itself waits (up to its deadline) for
        // the channel to connect, so a coordinator back from a restart is heard from within
        // its reconnection backoff, well inside the lease.
        next_heartbeat = Clock::now() + std::chrono::milliseconds(reachable_ ? heartbeat_ms_ : 0);
        if (!session_.empty()) ReportExits();
      }
      UpdateMetrics();
      if (shutting_down && (children_.empty() || Clock::now() > shutdown_deadline)) {
        Say("stopped");
        return 0;
      }
      if (options_.one_attempt && launched_any_ && children_.empty()) {
        Say("its one attempt has ended and its exit is reported: exiting");
        return 0;
      }
      if (options_.one_attempt && !launched_any_ && !session_.empty() &&
          Clock::now() - registered_at_ >
              std::chrono::milliseconds(options_.assignment_timeout_ms)) {
        Say("error: no assignment within " + std::to_string(options_.assignment_timeout_ms) +
            " ms of registering (the coordinator released this attempt): exiting");
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

 private:
  void Say(const std::string& line) {
    *out_ << "worker " << options_.id << ": " << line << std::endl;
  }

  int64_t LiveChildren() const {
    int64_t n = 0;
    for (const auto& [key, child] : children_) n += child.exit ? 0 : 1;
    return n;
  }

  // Registers (again), listing every attempt not yet reported. 0, or 2 when refused for good.
  int Register() {
    pb::RegisterWorkerRequest request;
    request.set_worker_id(options_.id);
    request.set_protocol_version(kWorkerProtocolVersion);
    request.set_build(MaestroBuild());
    request.set_address(options_.address.empty() ? HostName("worker") : options_.address);
    request.mutable_resources()->set_slots(options_.slots);
    request.mutable_resources()->set_cpu_cores(options_.cpu_cores);
    request.mutable_resources()->set_memory_mb(options_.memory_mb);
    for (const auto& [key, child] : children_) {
      auto* running = request.add_running();
      running->set_trial_id(child.trial);
      running->set_attempt(child.attempt);
    }
    pb::RegisterWorkerResponse response;
    grpc::ClientContext context;
    PrepareCall(context);
    const grpc::Status status = stub_->RegisterWorker(&context, request, &response);
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
        status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      Say("error: the coordinator refused this worker: " + status.error_message());
      return 2;
    }
    if (!status.ok()) {
      Unreachable(status);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      return 0;
    }
    reachable_ = true;
    last_contact_ = Clock::now();
    RenewLease();
    lease_stopped_ = false;
    session_ = response.session_id();
    registered_at_ = Clock::now();
    heartbeat_ms_ = std::max<int64_t>(50, response.heartbeat_interval_ms());
    if (response.worker_timeout_ms() > 0) lease_ms_ = response.worker_timeout_ms();
    Say("registered with " + options_.coordinator + " (" + std::to_string(options_.slots) +
        " slots, build " + MaestroBuild() + "), " + std::to_string(children_.size()) +
        " trainer(s) listed");
    for (const auto& kill : response.kill()) StopAttempt(kill.trial_id(), kill.attempt());
    return 0;
  }

  void Unreachable(const grpc::Status& status) {
    if (reachable_) {
      // A server that fails the TLS check looks like one that is down: say which it is.
      const bool no_connection = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                                 status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      const std::string why = no_connection ? ExplainTlsFailure(options_.coordinator, auth_) : "";
      Say("coordinator unreachable (" + status.error_message() + ")" +
          (why.empty() ? "" : "; refusing to talk to it: " + why) + "; retrying");
    }
    reachable_ = false;
  }

  // The lease file's time is now: this worker's trainers run on (StartLeaseWatchdog in
  // maestro-train stops them once it is older than half the coordinator's worker timeout).
  void RenewLease() { utimensat(AT_FDCWD, lease_file_.c_str(), nullptr, 0); }

  // Every call to the coordinator: bounded by RpcTimeoutMs, and waiting for the channel to be
  // ready within it. A fail-fast call on a channel in TRANSIENT_FAILURE returns at once without
  // driving the reconnection, and a TLS channel then never completes its handshake with a
  // coordinator that came back (seen with gRPC 1.51: the worker never re-registered).
  void PrepareCall(grpc::ClientContext& context) const {
    context.set_deadline(Deadline(RpcTimeoutMs()));
    context.set_wait_for_ready(true);
  }

  // A call to the coordinator waits at most a quarter of the lease: a coordinator that hangs
  // (rather than refusing connections) must not keep the loop from checking the lease.
  int64_t RpcTimeoutMs() const { return std::max<int64_t>(500, lease_ms_ / 4); }

  // The lease: half the coordinator's worker timeout without an answer, and the trainers are
  // stopped (SIGKILL at 90% of it), before the coordinator can declare this worker lost and
  // start them elsewhere. They checkpoint on SIGTERM; their exits are reported once the
  // coordinator answers again (queued again for free, or refused as stale).
  void CheckLease() {
    if (lease_stopped_ || LiveChildren() == 0) return;
    const auto silent =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - last_contact_);
    if (silent.count() < lease_ms_ / 2) return;
    lease_stopped_ = true;
    Say("no answer from the coordinator for " + std::to_string(silent.count()) +
        " ms (half its worker timeout): stopping " + std::to_string(LiveChildren()) +
        " trainer(s) before they are restarted elsewhere");
    for (auto& [key, child] : children_) {
      if (child.process && !child.exit) {
        child.process->Stop(std::chrono::milliseconds(std::min(grace_ms_, lease_ms_ * 4 / 10)));
      }
    }
  }

  void StopAttempt(int64_t trial, int64_t attempt) {
    auto it = children_.find({trial, attempt});
    if (it == children_.end() || it->second.exit) return;
    Say("stopping trial " + std::to_string(trial) + " attempt " + std::to_string(attempt) +
        " on the coordinator's request");
    it->second.stop_requested = true;
    it->second.process->Stop(std::chrono::milliseconds(grace_ms_));
  }

  void PollChildren() {
    for (auto& [key, child] : children_) {
      if (!child.exit && child.process) {
        if (auto exit = child.process->Poll()) {
          child.exit = exit;
          child.exited_at = Clock::now();
          if (exit->exit_code == 0) ++completed_;
          Say("trial " + std::to_string(child.trial) + " attempt " + std::to_string(child.attempt) +
              " exited " +
              (exit->exit_code >= 0 ? "with " + std::to_string(exit->exit_code)
                                    : "on signal " + std::to_string(exit->signal)));
        }
      }
      ReadOutput(child);
    }
  }

  // New complete records of the child's progress file: rank 0's figures.
  void ReadProgress(Child& child) {
    std::ifstream in(child.progress_path, std::ios::binary);
    if (!in) return;
    in.seekg(child.progress_read);
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    child.progress_read += static_cast<int64_t>(chunk.size());
    child.progress.Feed(chunk);
    if (!child.progress.first_problem().empty() && !child.progress_warned) {
      child.progress_warned = true;
      Say("trial " + std::to_string(child.trial) + ": " + child.progress.first_problem() +
          " (such lines are skipped)");
    }
  }

  // New complete lines of the child's log: its last error line; and its progress records.
  void ReadOutput(Child& child) {
    ReadProgress(child);
    std::ifstream in(child.log_path, std::ios::binary);
    in.seekg(child.parsed);
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (chunk.empty()) return;
    child.parsed += static_cast<int64_t>(chunk.size());
    child.partial += chunk;
    size_t start = 0, end;
    while ((end = child.partial.find('\n', start)) != std::string::npos) {
      std::string_view line(child.partial.data() + start, end - start);
      if (line.find("error") != std::string_view::npos) {
        child.last_error = std::string(line.substr(0, 2000));
      }
      start = end + 1;
    }
    child.partial.erase(0, start);
  }

  void Heartbeat(bool shutting_down) {
    pb::HeartbeatRequest request;
    request.set_worker_id(options_.id);
    request.set_session_id(session_);
    for (auto& [key, child] : children_) {
      auto* held = request.add_held();
      held->set_trial_id(child.trial);
      held->set_attempt(child.attempt);
      if (!child.exit) {
        auto* p = request.add_progress();
        p->set_trial_id(child.trial);
        p->set_attempt(child.attempt);
        p->set_stage(child.job);
        if (const auto& figures = child.progress.figures()) {
          p->set_step(figures->step);
          p->set_total_steps(figures->total_steps);
          p->set_loss(figures->loss);
          p->set_learning_rate(figures->lr);
          p->set_images_per_second(figures->images_per_second);
        }
      }
      auto size = FileSize(child.log_path);
      if (size.ok() && *size > child.acked) {
        std::ifstream in(child.log_path, std::ios::binary);
        in.seekg(child.acked);
        std::string data(static_cast<size_t>(std::min(*size - child.acked, options_.max_log_chunk)),
                         '\0');
        in.read(data.data(), static_cast<std::streamsize>(data.size()));
        data.resize(static_cast<size_t>(in.gcount()));
        auto* log = request.add_logs();
        log->set_trial_id(child.trial);
        log->set_attempt(child.attempt);
        log->set_offset(child.acked);
        log->set_data(std::move(data));
      }
    }
    int64_t used = 0;
    for (const auto& [key, child] : children_) used += child.slots;
    request.set_free_slots(shutting_down ? 0 : options_.slots - used);
    pb::HeartbeatResponse response;
    grpc::ClientContext context;
    PrepareCall(context);
    const grpc::Status status = stub_->Heartbeat(&context, request, &response);
    if (!status.ok()) {
      ++heartbeat_failures_;
      Unreachable(status);
      return;
    }
    if (!reachable_) {
      Say("coordinator reachable again, " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - last_contact_)
                  .count()) +
          " ms after its last answer");
    }
    reachable_ = true;
    last_contact_ = Clock::now();
    RenewLease();
    lease_stopped_ = false;
    if (response.reregister()) {
      Say("the coordinator does not know this session (it restarted, or declared this worker "
          "lost): registering again");
      session_.clear();
      return;
    }
    for (const auto& ack : response.log_acks()) {
      auto it = children_.find({ack.trial_id(), ack.attempt()});
      if (it != children_.end()) it->second.acked = ack.offset();
    }
    for (const auto& kill : response.kill()) StopAttempt(kill.trial_id(), kill.attempt());
    for (const auto& assignment : response.assignments()) Launch(assignment);
    for (const auto& renewed : response.data_tokens()) {
      auto it = children_.find({renewed.trial_id(), renewed.attempt()});
      if (it == children_.end() || it->second.data_token_path.empty()) continue;
      if (Status s = security::WriteSecretFile(it->second.data_token_path, renewed.token() + "\n");
          !s.ok()) {
        Say("error: cannot renew the data token of trial " + std::to_string(renewed.trial_id()) +
            ": " + s.ToString());
      }
    }
  }

  // The paths of an assignment's config against this worker's roots, symlinks resolved:
  // where its trainer writes (under --runs-root) and what it reads (under --data-root or
  // --runs-root). A coordinator, compromised or misconfigured, cannot make it write elsewhere.
  Status ConfinePaths(const TrialPlacement& placement) const {
    MAESTRO_RETURN_IF_ERROR(write_roots_.Check("run.output_dir", placement.output_dir, true));
    MAESTRO_RETURN_IF_ERROR(write_roots_.Check("checkpoint.dir", placement.checkpoint_dir, true));
    if (!placement.data_path.empty()) {
      MAESTRO_RETURN_IF_ERROR(read_roots_.Check("data.path", placement.data_path, true));
    }
    if (!placement.pretrained.empty() && placement.pretrained != "none") {
      MAESTRO_RETURN_IF_ERROR(read_roots_.Check("classify.pretrained", placement.pretrained, true));
    }
    return OkStatus();
  }

  void Launch(const pb::Assignment& a) {
    Child child;
    child.trial = a.trial_id();
    child.attempt = a.attempt();
    child.job = a.job();
    grace_ms_ = a.grace_period_ms();
    const std::string name =
        "trial-" + std::to_string(child.trial) + "-attempt-" + std::to_string(child.attempt);
    child.log_path = options_.work_dir + "/logs/" + name + ".log";
    child.progress_path = options_.work_dir + "/logs/" + name + ".progress";
    const std::string config_path = options_.work_dir + "/configs/" + name + ".json";
    child.slots = std::max<int64_t>(1, a.slots());
    const pb::Placement& p = a.placement();
    const TrialPlacement placement{p.output_dir(),   p.checkpoint_dir(), p.data_path(),
                                   p.data_service(), p.data_dataset(),   p.pretrained()};
    // A GPU trial of several slots or nodes: one process per slot, torchrun-style ranks over
    // NCCL. A CPU trial of several slots: mpirun's ranks (Open MPI joins only what it starts).
    const bool gpu = a.device().rfind("cuda", 0) == 0;
    child.slot_ids = FreeSlotIds(child.slots);
    // Paths outside this worker's roots: refused before anything is written.
    const Status confined = ConfinePaths(placement);
    const bool refused = !confined.ok();
    // The trainer's config: the coordinator's, with the placement written in.
    auto config = Json::Parse(a.config_json());
    Status configured =
        config.ok() ? ApplyPlacement(placement, *config)
                    : InvalidArgumentError("the assignment's config: " + config.status().message());
    LaunchInput in;
    in.trial = child.trial;
    in.attempt = child.attempt;
    in.job = a.job();
    in.resume = a.resume();
    in.slots = child.slots;
    in.gpu = gpu;
    in.nodes = a.nodes();
    in.node_rank = a.node_rank();
    in.master_addr = a.master_addr();
    in.master_port = a.master_port();
    in.slurm_allocation = slurm_allocation_;
    in.train_binary = options_.train_binary;
    in.mpirun = options_.mpirun;
    in.config_path = config_path;
    in.rendezvous_record = options_.work_dir + "/logs/" + name + ".rendezvous";
    in.ca_file = options_.ca_file;
    in.lease_file = lease_file_;
    in.lease_timeout_ms = lease_ms_;
    in.fence_file = placement.output_dir + "/ATTEMPT";
    in.progress_file = child.progress_path;
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    for (int64_t id : child.slot_ids) in.gpus.push_back(GpuOfSlot(visible ? visible : "", id));
    if ((a.nodes() <= 1) && child.slots > 1 && gpu) in.local_port = FreeLocalPort();
    // The data token travels in a file of its own, mode 0600.
    Status token_written = OkStatus();
    if (!a.data_token().empty() && !refused) {
      child.data_token_path = options_.work_dir + "/secrets/" + name + ".data-token";
      token_written = security::WriteSecretFile(child.data_token_path, a.data_token() + "\n");
      in.data_token_file = child.data_token_path;
    }
    const LaunchPlan plan = PlanLaunch(in);
    std::string header = "=== trial " + std::to_string(child.trial) + " attempt " +
                         std::to_string(child.attempt) + ": maestro-train " + a.job() +
                         (a.resume() ? " --resume auto" : "") + " on worker " + options_.id +
                         " ===\n";
    Status written = refused ? confined : !token_written.ok() ? token_written : configured;
    if (written.ok()) {
      child.output_dir = placement.output_dir;
      written = MakeDirectories(child.output_dir);
    }
    if (written.ok()) {
      // The fence: a trainer of an earlier attempt still running somewhere (its worker was
      // declared lost) sees this number and commits no checkpoint or result from now on.
      written =
          WriteFileAtomic(child.output_dir + "/ATTEMPT", std::to_string(child.attempt) + "\n");
    }
    if (written.ok()) written = WriteFileAtomic(config_path, config->Dump() + "\n");
    if (written.ok()) written = WriteFileAtomic(child.log_path, header);
    if (written.ok()) {
      auto process =
          TrainerProcess::StartGroup(plan.argv, child.log_path, plan.env, plan.local_env);
      if (process.ok()) {
        child.process = std::move(*process);
      } else {
        written = process.status();
      }
    }
    if (refused) {
      refusals_counter_.Increment();
      child.exit = ProcessExit{kExitRetryableFailure, 0};
      child.exited_at = Clock::now();
      child.last_error = "error: worker " + options_.id +
                         " refused the assignment (nothing was created): " + written.ToString();
      Say("trial " + std::to_string(child.trial) + " attempt " + std::to_string(child.attempt) +
          ": refused: " + written.ToString());
    } else if (!written.ok()) {
      child.exit = ProcessExit{kExitRetryableFailure, 0};
      child.exited_at = Clock::now();
      child.last_error = "error: the worker could not start the trainer: " + written.ToString();
    } else {
      ++started_;
    }
    Say("trial " + std::to_string(child.trial) + " attempt " + std::to_string(child.attempt) +
        ": " + a.job() + (a.resume() ? " (resuming)" : "") +
        (child.process ? ", pid " + std::to_string(child.process->pid())
                       : ": " + child.last_error));
    children_[{child.trial, child.attempt}] = std::move(child);
    launched_any_ = true;
  }

  // The `count` lowest slot numbers no other attempt of this worker holds (the coordinator
  // never assigns more slots than are free; should it, the numbers wrap around).
  std::vector<int64_t> FreeSlotIds(int64_t count) const {
    std::set<int64_t> held;
    for (const auto& [key, child] : children_)
      held.insert(child.slot_ids.begin(), child.slot_ids.end());
    std::vector<int64_t> ids;
    for (int64_t id = 0; id < options_.slots && static_cast<int64_t>(ids.size()) < count; ++id) {
      if (held.count(id) == 0) ids.push_back(id);
    }
    for (int64_t id = 0; static_cast<int64_t>(ids.size()) < count; ++id) {
      ids.push_back(id % options_.slots);
    }
    return ids;
  }

  // Exit reports of ended attempts whose logs are stored (or after 10 s of trying).
  void ReportExits() {
    for (auto it = children_.begin(); it != children_.end();) {
      Child& child = it->second;
      if (!child.exit) {
        ++it;
        continue;
      }
      auto size = FileSize(child.log_path);
      const bool logs_stored = !size.ok() || child.acked >= *size;
      if (!logs_stored && Clock::now() - child.exited_at < std::chrono::seconds(10)) {
        ++it;
        continue;
      }
      pb::ReportTrialExitRequest request;
      request.set_worker_id(options_.id);
      request.set_session_id(session_);
      request.set_trial_id(child.trial);
      request.set_attempt(child.attempt);
      request.set_exit_code(child.exit->exit_code);
      request.set_signal(child.exit->signal);
      request.set_stopped_by_request(child.stop_requested);
      request.set_time_limit(child.time_limit);
      request.set_cause(child.last_error);
      if (child.exit->exit_code == 0 && !child.output_dir.empty()) {
        auto result = ReadFile(child.output_dir + "/result.json");
        if (result.ok()) request.set_result_json(*result);
      }
      pb::ReportTrialExitResponse response;
      grpc::ClientContext context;
      PrepareCall(context);
      const grpc::Status status = stub_->ReportTrialExit(&context, request, &response);
      if (status.ok() || status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
          status.error_code() == grpc::StatusCode::NOT_FOUND ||
          status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
        if (!status.ok()) Say("exit report dropped: " + status.error_message());
        if (!child.data_token_path.empty()) unlink(child.data_token_path.c_str());
        unlink(child.progress_path.c_str());
        it = children_.erase(it);
        continue;
      }
      if (status.error_code() == grpc::StatusCode::ABORTED) {
        Say("exit report refused for an old session: registering again, then reporting");
        session_.clear();
        return;
      }
      Unreachable(status);
      return;  // retried with the next heartbeat
    }
  }

  void UpdateMetrics() {
    // Each rank's windows (progress_record.h) go into its series; taken either way.
    std::set<std::pair<int64_t, int64_t>> live;  // (trial, rank) of running attempts
    for (auto& [key, child] : children_) {
      std::vector<ProgressRecord> windows = child.progress.TakeWindows();
      if (!exposer_) continue;
      for (const ProgressRecord& w : windows) AddWindow(child.trial, w);
      if (!child.exit) {
        for (const auto& [series_key, unused] : rank_series_) {
          if (series_key.first == child.trial) live.insert(series_key);
        }
      }
    }
    if (!exposer_) return;
    // An ended attempt's series go (label sets stay bounded by the running trials' ranks).
    for (auto it = rank_series_.begin(); it != rank_series_.end();) {
      if (live.count(it->first)) {
        ++it;
        continue;
      }
      RankSeries& r = it->second;
      steps_family_.Remove(r.steps);
      samples_family_.Remove(r.samples);
      step_time_family_.Remove(r.step);
      data_wait_family_.Remove(r.wait);
      allreduce_family_.Remove(r.sync);
      checkpoint_write_family_.Remove(r.checkpoint_write);
      grad_norm_family_.Remove(r.grad_norm);
      checkpoint_age_family_.Remove(r.checkpoint_age);
      checkpoint_interval_family_.Remove(r.checkpoint_interval);
      it = rank_series_.erase(it);
    }
    running_gauge_.Set(static_cast<double>(LiveChildren()));
    slots_gauge_.Set(static_cast<double>(options_.slots));
    started_counter_.Increment(static_cast<double>(started_) - started_counter_.Value());
    heartbeat_failures_counter_.Increment(static_cast<double>(heartbeat_failures_) -
                                          heartbeat_failures_counter_.Value());
  }

  // One rank's window into its series (made at its first window).
  void AddWindow(int64_t trial, const ProgressRecord& w) {
    auto [it, made] = rank_series_.try_emplace({trial, w.rank});
    RankSeries& r = it->second;
    if (made) {
      const std::map<std::string, std::string> labels = {{"trial", std::to_string(trial)},
                                                         {"rank", std::to_string(w.rank)}};
      const prometheus::Histogram::BucketBoundaries bounds(DurationBucketsSeconds().begin(),
                                                           DurationBucketsSeconds().end());
      r.steps = &steps_family_.Add(labels);
      r.samples = &samples_family_.Add(labels);
      r.step = &step_time_family_.Add(labels, bounds);
      r.wait = &data_wait_family_.Add(labels, bounds);
      r.sync = &allreduce_family_.Add(labels, bounds);
      r.checkpoint_write = &checkpoint_write_family_.Add(labels, bounds);
      r.grad_norm = &grad_norm_family_.Add(labels);
      r.checkpoint_age = &checkpoint_age_family_.Add(labels);
      r.checkpoint_interval = &checkpoint_interval_family_.Add(labels);
    }
    r.steps->Increment(static_cast<double>(w.steps));
    r.samples->Increment(static_cast<double>(w.samples));
    auto observe = [](prometheus::Histogram* h, const DurationCounts& d) {
      if (d.total() == 0) return;
      std::vector<double> increments(d.counts.begin(), d.counts.end());
      h->ObserveMultiple(increments, d.sum);
    };
    observe(r.step, w.step_s);
    observe(r.wait, w.data_wait_s);
    observe(r.sync, w.allreduce_s);
    observe(r.checkpoint_write, w.checkpoint_write_s);
    if (w.grad_norm >= 0) r.grad_norm->Set(w.grad_norm);
    r.checkpoint_age->Set(w.checkpoint_age_s);
    r.checkpoint_interval->Set(w.checkpoint_interval_s);
  }

  WorkerOptions options_;
  ClientAuth auth_;
  std::ostream* out_ = nullptr;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Coordinator::Stub> stub_;
  std::string lease_file_;
  PathRoots write_roots_, read_roots_;  // --runs-root; --data-root and --runs-root (resolved)
  std::string session_;
  int64_t heartbeat_ms_ = 1000;
  int64_t grace_ms_ = 30000;
  int64_t lease_ms_ = 10000;  // the coordinator's worker timeout (told at registration)
  Clock::time_point last_contact_ = Clock::now();
  bool lease_stopped_ = false;
  bool reachable_ = true;
  bool slurm_allocation_ = false;  // one attempt, in its own Slurm allocation
  bool launched_any_ = false;      // one attempt: its assignment arrived
  Clock::time_point registered_at_ = Clock::now();
  std::map<std::pair<int64_t, int64_t>, Child> children_;
  int64_t started_ = 0, completed_ = 0, heartbeat_failures_ = 0;

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  prometheus::Gauge& running_gauge_ = prometheus::BuildGauge()
                                          .Name("maestro_worker_trainers_running")
                                          .Help("Trainer processes running")
                                          .Register(*registry_)
                                          .Add({});
  prometheus::Gauge& slots_gauge_ = prometheus::BuildGauge()
                                        .Name("maestro_worker_slots")
                                        .Help("Trial slots this worker offers")
                                        .Register(*registry_)
                                        .Add({});
  prometheus::Counter& started_counter_ = prometheus::BuildCounter()
                                              .Name("maestro_worker_trainers_started_total")
                                              .Help("Trainer processes started")
                                              .Register(*registry_)
                                              .Add({});
  prometheus::Counter& heartbeat_failures_counter_ =
      prometheus::BuildCounter()
          .Name("maestro_worker_heartbeat_failures_total")
          .Help("Heartbeats the coordinator did not answer")
          .Register(*registry_)
          .Add({});
  prometheus::Counter& refusals_counter_ =
      prometheus::BuildCounter()
          .Name("maestro_worker_assignments_refused_total")
          .Help("Assignments refused because a path left this worker's roots")
          .Register(*registry_)
          .Add({});
  // Per-rank training figures (docs/metrics.md), by (trial, rank) while its attempt runs.
  struct RankSeries {
    prometheus::Counter *steps = nullptr, *samples = nullptr;
    prometheus::Histogram *step = nullptr, *wait = nullptr, *sync = nullptr,
                          *checkpoint_write = nullptr;
    prometheus::Gauge *grad_norm = nullptr, *checkpoint_age = nullptr,
                      *checkpoint_interval = nullptr;
  };
  std::map<std::pair<int64_t, int64_t>, RankSeries> rank_series_;
  prometheus::Family<prometheus::Counter>& steps_family_ =
      prometheus::BuildCounter()
          .Name("maestro_trainer_optimizer_steps_total")
          .Help("Optimizer steps a trainer rank took in its current attempt")
          .Register(*registry_);
  prometheus::Family<prometheus::Counter>& samples_family_ =
      prometheus::BuildCounter()
          .Name("maestro_trainer_samples_total")
          .Help("Samples a trainer rank trained on in its current attempt")
          .Register(*registry_);
  prometheus::Family<prometheus::Histogram>& step_time_family_ =
      prometheus::BuildHistogram()
          .Name("maestro_trainer_step_seconds")
          .Help("Time of one optimizer step (its evaluation and checkpoint left out)")
          .Register(*registry_);
  prometheus::Family<prometheus::Histogram>& data_wait_family_ =
      prometheus::BuildHistogram()
          .Name("maestro_trainer_data_wait_seconds")
          .Help("Time one optimizer step waited for its batches")
          .Register(*registry_);
  prometheus::Family<prometheus::Histogram>& allreduce_family_ =
      prometheus::BuildHistogram()
          .Name("maestro_trainer_allreduce_seconds")
          .Help("Time one optimizer step spent in the gradient all-reduce (data-parallel runs)")
          .Register(*registry_);
  prometheus::Family<prometheus::Histogram>& checkpoint_write_family_ =
      prometheus::BuildHistogram()
          .Name("maestro_trainer_checkpoint_write_seconds")
          .Help("Time to write and commit one checkpoint (rank 0 writes it)")
          .Register(*registry_);
  prometheus::Family<prometheus::Gauge>& grad_norm_family_ =
      prometheus::BuildGauge()
          .Name("maestro_trainer_grad_norm")
          .Help("Global gradient norm at the last progress record (before clipping)")
          .Register(*registry_);
  prometheus::Family<prometheus::Gauge>& checkpoint_age_family_ =
      prometheus::BuildGauge()
          .Name("maestro_trainer_checkpoint_age_seconds")
          .Help("Time since the trainer's last committed checkpoint, at its last progress record")
          .Register(*registry_);
  prometheus::Family<prometheus::Gauge>& checkpoint_interval_family_ =
      prometheus::BuildGauge()
          .Name("maestro_trainer_checkpoint_interval_seconds")
          .Help(
              "The expected time between checkpoints (checkpoint.interval_seconds, or "
              "interval_steps at the measured step time); 0: none")
          .Register(*registry_);
  std::unique_ptr<prometheus::Exposer> exposer_;
};

WorkerDaemon::WorkerDaemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WorkerDaemon::~WorkerDaemon() = default;

Result<std::unique_ptr<WorkerDaemon>> WorkerDaemon::Create(WorkerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  MAESTRO_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<WorkerDaemon>(new WorkerDaemon(std::move(impl)));
}

int WorkerDaemon::Run(const std::atomic<int>& stop, std::ostream& out) {
  return impl_->Run(stop, out);
}
int WorkerDaemon::metrics_port() const { return impl_->metrics_port(); }

}  // namespace maestro::worker
