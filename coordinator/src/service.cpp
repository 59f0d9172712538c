#include "maestro/coordinator/service.h"

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "maestro/coordinator/store.h"
#include "maestro/coordinator/tokens.h"
#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/dataloader/data_client.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/grpc_auth.h"
#include "maestro/shared/grpc_status.h"
#include "maestro/shared/metrics_http.h"
#include "maestro/shared/security.h"

namespace maestro::coordinator {

namespace pb = maestro::coordinator::v1;
using security::Role;

namespace {

// Who may make a call (coordinator.proto): readers are viewers, users and admins; writers users
// and admins; token management admins; worker calls workers, for their own worker id.
enum class Access { kRead, kWrite, kAdmin, kWorker };

bool Allowed(Role role, Access access) {
  switch (access) {
    case Access::kRead:
      return role == Role::kViewer || role == Role::kUser || role == Role::kAdmin;
    case Access::kWrite:
      return role == Role::kUser || role == Role::kAdmin;
    case Access::kAdmin:
      return role == Role::kAdmin;
    case Access::kWorker:
      return role == Role::kWorker;
  }
  return false;
}

// Request size limits (documented in coordinator.proto).
constexpr size_t kMaxName = 256;
constexpr size_t kMaxExperimentBytes = 1 << 20;
constexpr size_t kMaxDatasetBytes = 64 << 10;
constexpr size_t kMaxLogChunkBytes = 1 << 20;
constexpr int kMaxEntries = 1024;
constexpr size_t kMaxResultBytes = 1 << 20;
constexpr size_t kMaxCauseBytes = 64 << 10;
constexpr int kMaxRequestBytes = 16 << 20;

grpc::Status TooLarge(const std::string& what, size_t size, size_t limit) {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      what + ": " + std::to_string(size) + " over the limit of " +
                          std::to_string(limit));
}

// Why a call was refused (the auth failures counter's labels).
const std::set<std::string>& AuthFailureReasons() {
  static const std::set<std::string> reasons = {"missing", "malformed", "unknown",   "expired",
                                                "revoked", "role",      "worker_id", "attempt",
                                                "session", "owner"};
  return reasons;
}

// The causes a restart is charged for (EndAttemptFailed's retries).
const std::vector<std::string>& RestartCauses() {
  static const std::vector<std::string> causes = {"crash", "signal", "retryable", "worker_lost",
                                                  "timeout"};
  return causes;
}

// The coordinator's Prometheus series, refreshed from Scheduler::Snapshot() twice a second.
// Counters with a known set of labels start at zero, so every series exists from the start
// (docs/metrics.md).
class CoordinatorMetrics {
 public:
  CoordinatorMetrics()
      : registry_(std::make_shared<prometheus::Registry>()),
        trials_(prometheus::BuildGauge()
                    .Name("maestro_coordinator_trials")
                    .Help("Trials by state")
                    .Register(*registry_)),
        queue_wait_(prometheus::BuildHistogram()
                        .Name("maestro_coordinator_queue_wait_seconds")
                        .Help("Time from queued to assigned, per assignment")
                        .Register(*registry_)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.5, 1, 2, 5, 10, 30,
                                                                         60, 300, 1800, 3600})),
        restarts_(prometheus::BuildCounter()
                      .Name("maestro_coordinator_trial_restarts_total")
                      .Help("Trial restarts by cause (crash, signal, retryable, worker_lost, "
                            "timeout)")
                      .Register(*registry_)),
        workers_lost_(
            prometheus::BuildCounter()
                .Name("maestro_coordinator_workers_lost_total")
                .Help("Workers declared lost (silent past the worker timeout, or not back "
                      "after a coordinator restart)")
                .Register(*registry_)
                .Add({})),
        workers_(prometheus::BuildGauge()
                     .Name("maestro_coordinator_workers")
                     .Help("Workers by state (alive, lost)")
                     .Register(*registry_)),
        slots_(prometheus::BuildGauge()
                   .Name("maestro_coordinator_slots")
                   .Help("Slots of alive workers: total, in_use")
                   .Register(*registry_)),
        step_(prometheus::BuildGauge()
                  .Name("maestro_trial_step")
                  .Help("A running trial's optimizer step")
                  .Register(*registry_)),
        loss_(prometheus::BuildGauge()
                  .Name("maestro_trial_loss")
                  .Help("A running trial's training loss (last progress line)")
                  .Register(*registry_)),
        lr_(prometheus::BuildGauge()
                .Name("maestro_trial_learning_rate")
                .Help("A running trial's learning rate")
                .Register(*registry_)),
        images_(prometheus::BuildGauge()
                    .Name("maestro_trial_images_per_second")
                    .Help("A running trial's training images/s")
                    .Register(*registry_)),
        auth_failures_(
            prometheus::BuildCounter()
                .Name("maestro_coordinator_auth_failures_total")
                .Help("Calls refused for their caller, by reason (missing, malformed, "
                      "unknown, expired, revoked, role, worker_id, attempt, session, owner)")
                .Register(*registry_)) {
    for (const std::string& reason : AuthFailureReasons()) auth_failures_.Add({{"reason", reason}});
    for (const std::string& cause : RestartCauses()) restarts_.Add({{"cause", cause}});
    RegisterBuildInfo(*registry_, "maestro-coordinator");
  }

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  void CountAuthFailure(const std::string& reason) {
    auth_failures_.Add({{"reason", reason}}).Increment();
  }

  void Update(const SchedulerSnapshot& s) {
    for (const auto& [state, n] : s.trials_by_state) {
      trials_.Add({{"state", state}}).Set(static_cast<double>(n));
    }
    for (double wait : s.queue_waits_s) queue_wait_.Observe(wait);
    for (const auto& [cause, n] : s.restarts_by_cause) {
      auto& counter = restarts_.Add({{"cause", cause}});
      const double delta = static_cast<double>(n) - counter.Value();
      if (delta > 0) counter.Increment(delta);
    }
    if (const double delta = static_cast<double>(s.workers_declared_lost) - workers_lost_.Value();
        delta > 0) {
      workers_lost_.Increment(delta);
    }
    workers_.Add({{"state", "alive"}}).Set(static_cast<double>(s.workers_alive));
    workers_.Add({{"state", "lost"}}).Set(static_cast<double>(s.workers_lost));
    slots_.Add({{"kind", "total"}}).Set(static_cast<double>(s.slots_total));
    slots_.Add({{"kind", "in_use"}}).Set(static_cast<double>(s.slots_in_use));
    std::map<int64_t, Series> next;
    for (const auto& r : s.running) {
      if (!r.has_progress) continue;
      auto it = series_.find(r.trial);
      Series series;
      if (it != series_.end()) {
        series = it->second;
        series_.erase(it);
      } else {
        const std::map<std::string, std::string> labels = {
            {"experiment", std::to_string(r.experiment)}, {"trial", std::to_string(r.trial)}};
        series = {&step_.Add(labels), &loss_.Add(labels), &lr_.Add(labels), &images_.Add(labels)};
      }
      series.step->Set(static_cast<double>(r.step));
      series.loss->Set(r.loss);
      series.lr->Set(r.lr);
      series.images->Set(r.images_per_second);
      next.emplace(r.trial, series);
    }
    for (const auto& [trial, series] : series_) {  // trials no longer running
      step_.Remove(series.step);
      loss_.Remove(series.loss);
      lr_.Remove(series.lr);
      images_.Remove(series.images);
    }
    series_ = std::move(next);
  }

 private:
  struct Series {
    prometheus::Gauge *step = nullptr, *loss = nullptr, *lr = nullptr, *images = nullptr;
  };
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& trials_;
  prometheus::Histogram& queue_wait_;
  prometheus::Family<prometheus::Counter>& restarts_;
  prometheus::Counter& workers_lost_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Family<prometheus::Gauge>& slots_;
  prometheus::Family<prometheus::Gauge>& step_;
  prometheus::Family<prometheus::Gauge>& loss_;
  prometheus::Family<prometheus::Gauge>& lr_;
  prometheus::Family<prometheus::Gauge>& images_;
  prometheus::Family<prometheus::Counter>& auth_failures_;
  std::map<int64_t, Series> series_;
};

// The clock the options name, or the system's.
const Clock& ClockOf(const CoordinatorOptions& options) {
  return options.scheduler.clock != nullptr ? *options.scheduler.clock : SystemClock();
}

}  // namespace

class CoordinatorServer::Impl final : public pb::Coordinator::Service {
 public:
  Impl(std::unique_ptr<Scheduler> scheduler, std::unique_ptr<TokenRegistry> tokens,
       const Clock& clock)
      : scheduler_(std::move(scheduler)), tokens_(std::move(tokens)), clock_(clock) {}

  Status Listen(const CoordinatorOptions& options, std::shared_ptr<grpc::ServerCredentials> tls) {
    options_ = options;
    if (!options.credentials_dir.empty()) {
      MAESTRO_ASSIGN_OR_RETURN(data_token_key_,
                               security::ReadSecretFile(options.credentials_dir + "/" +
                                                        security::kDataTokenKeyFile));
    }
    if (!options.metrics_listen.empty()) {
      MAESTRO_ASSIGN_OR_RETURN(exposer_, ServeMetrics(options.metrics_listen, metrics_.registry()));
    }
    grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port fails
    builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
    builder.AddListeningPort(options.listen, tls, &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return UnavailableError("cannot listen on " + options.listen +
                              " (address in use or malformed)");
    }
    ticker_ = std::thread([this] { TickLoop(); });
    if (scheduler_->HasSlurmBackend()) backend_poller_ = std::thread([this] { BackendLoop(); });
    return OkStatus();
  }

  void Shutdown() {
    std::call_once(once_, [this] {
      {
        std::lock_guard<std::mutex> lock(tick_mutex_);
        stopping_ = true;
      }
      tick_cv_.notify_all();
      if (ticker_.joinable()) ticker_.join();
      if (backend_poller_.joinable()) backend_poller_.join();
      if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    });
  }
  int port() const { return port_; }
  int metrics_port() const { return MetricsPort(exposer_.get()); }
  Scheduler& scheduler() { return *scheduler_; }

  // --- users ---

  grpc::Status CreateExperiment(grpc::ServerContext* context,
                                const pb::CreateExperimentRequest* request,
                                pb::CreateExperimentResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "CreateExperiment", Access::kWrite, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (request->experiment_json().size() > kMaxExperimentBytes) {
      return TooLarge("experiment_json", request->experiment_json().size(), kMaxExperimentBytes);
    }
    if (request->idempotency_key().size() > kMaxName) {
      return TooLarge("idempotency_key", request->idempotency_key().size(), kMaxName);
    }
    auto tree = Json::Parse(request->experiment_json());
    if (!tree.ok()) return ToGrpcStatus(tree.status().WithContext("experiment_json"));
    auto created = scheduler_->CreateExperiment(*tree, request->idempotency_key(), caller.Actor());
    if (!created.ok()) return ToGrpcStatus(created.status());
    response->set_experiment_id(created->id);
    response->set_existed(created->existed);
    for (int64_t id : created->trials) response->add_trial_ids(id);
    response->set_reused_trials(static_cast<int64_t>(created->reused.size()));
    return grpc::Status::OK;
  }

  grpc::Status ListExperiments(grpc::ServerContext* context, const pb::ListExperimentsRequest*,
                               pb::ListExperimentsResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ListExperiments", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    for (const Json& e : scheduler_->ListExperiments()) response->add_experiments_json(e.Dump());
    return grpc::Status::OK;
  }

  grpc::Status DescribeExperiment(grpc::ServerContext* context,
                                  const pb::DescribeExperimentRequest* request,
                                  pb::DescribeExperimentResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "DescribeExperiment", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    auto described = scheduler_->DescribeExperiment(request->experiment_id());
    if (!described.ok()) return ToGrpcStatus(described.status());
    response->set_experiment_json(described->first.Dump());
    for (const Json& trial : described->second) response->add_trials_json(trial.Dump());
    return grpc::Status::OK;
  }

  grpc::Status CancelExperiment(grpc::ServerContext* context,
                                const pb::CancelExperimentRequest* request,
                                pb::CancelExperimentResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "CancelExperiment", Access::kWrite, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (auto refused = RefuseUnlessOwner(*context, "CancelExperiment", request->experiment_id(),
                                         caller, "cancel");
        !refused.ok()) {
      return refused;
    }
    auto canceled = scheduler_->CancelExperiment(request->experiment_id(), caller.Actor());
    if (!canceled.ok()) return ToGrpcStatus(canceled.status());
    response->set_canceled_queued(canceled->first);
    response->set_stopping(canceled->second);
    return grpc::Status::OK;
  }

  // OK when `caller` may change experiment `id` (its creator, or an admin; an unknown id is the
  // call's own NOT_FOUND); else the refusal, counted and logged.
  grpc::Status RefuseUnlessOwner(const grpc::ServerContext& context, const char* rpc, int64_t id,
                                 const Caller& caller, const char* verb) {
    auto creator = scheduler_->ExperimentCreator(id);
    if (!creator.ok() || OwnedBy(caller, *creator)) return grpc::Status::OK;
    return Refuse(context, rpc, "owner", &caller,
                  grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                               "experiment " + std::to_string(id) +
                                   " was created by another user (an admin may " + verb + " it)"));
  }

  grpc::Status ContinueExperiment(grpc::ServerContext* context,
                                  const pb::ContinueExperimentRequest* request,
                                  pb::ContinueExperimentResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ContinueExperiment", Access::kWrite, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (auto refused = RefuseUnlessOwner(*context, "ContinueExperiment", request->experiment_id(),
                                         caller, "continue");
        !refused.ok()) {
      return refused;
    }
    auto queued = scheduler_->ContinueExperiment(request->experiment_id(), caller.Actor());
    if (!queued.ok()) return ToGrpcStatus(queued.status());
    response->set_queued(*queued);
    return grpc::Status::OK;
  }

  grpc::Status ExtendExperiment(grpc::ServerContext* context,
                                const pb::ExtendExperimentRequest* request,
                                pb::ExtendExperimentResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ExtendExperiment", Access::kWrite, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (auto refused = RefuseUnlessOwner(*context, "ExtendExperiment", request->experiment_id(),
                                         caller, "extend");
        !refused.ok()) {
      return refused;
    }
    auto added =
        scheduler_->ExtendExperiment(request->experiment_id(), request->trials(), caller.Actor());
    if (!added.ok()) return ToGrpcStatus(added.status());
    for (int64_t id : *added) response->add_trial_ids(id);
    return grpc::Status::OK;
  }

  grpc::Status GetTrial(grpc::ServerContext* context, const pb::GetTrialRequest* request,
                        pb::GetTrialResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "GetTrial", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    auto detail = scheduler_->TrialDetail(request->trial_id());
    if (!detail.ok()) return ToGrpcStatus(detail.status());
    response->set_trial_json(detail->first.Dump());
    response->set_configs_json(detail->second.Dump());
    return grpc::Status::OK;
  }

  grpc::Status GetMetricHistory(grpc::ServerContext* context,
                                const pb::GetMetricHistoryRequest* request,
                                pb::GetMetricHistoryResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "GetMetricHistory", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (request->max_records() < 0 || request->max_records() > 10000) {
      return ToGrpcStatus(InvalidArgumentError("max_records: 1 to 10000 (0: 1000), not " +
                                               std::to_string(request->max_records())));
    }
    if (request->page_token().size() > kMaxName) {
      return TooLarge("page_token", request->page_token().size(), kMaxName);
    }
    auto page = scheduler_->MetricHistory(
        request->experiment_id(), request->trial_id(), request->page_token(),
        request->max_records() == 0 ? 1000 : request->max_records());
    if (!page.ok()) return ToGrpcStatus(page.status());
    for (const Json& record : page->first) response->add_records_json(record.Dump());
    response->set_next_page_token(page->second);
    return grpc::Status::OK;
  }

  grpc::Status GetTrialLogs(grpc::ServerContext* context, const pb::GetTrialLogsRequest* request,
                            pb::GetTrialLogsResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "GetTrialLogs", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    auto logs = scheduler_->Logs(request->trial_id(), request->offset(), request->max_bytes());
    if (!logs.ok()) return ToGrpcStatus(logs.status());
    response->set_data(std::move(logs->data));
    response->set_next_offset(logs->next_offset);
    response->set_state(logs->state);
    return grpc::Status::OK;
  }

  grpc::Status ListEvents(grpc::ServerContext* context, const pb::ListEventsRequest* request,
                          pb::ListEventsResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ListEvents", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    for (const Json& e : scheduler_->Events(request->from_seq())) {
      const Json* experiment = e.Find("experiment");
      if (request->experiment_id() != 0 && (experiment == nullptr || !experiment->is_int() ||
                                            experiment->as_int() != request->experiment_id())) {
        continue;
      }
      response->add_events_json(e.Dump());
    }
    return grpc::Status::OK;
  }

  grpc::Status ListWorkers(grpc::ServerContext* context, const pb::ListWorkersRequest*,
                           pb::ListWorkersResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ListWorkers", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    for (const Json& w : scheduler_->ListWorkers()) response->add_workers_json(w.Dump());
    return grpc::Status::OK;
  }

  grpc::Status RegisterDataset(grpc::ServerContext* context,
                               const pb::RegisterDatasetRequest* request,
                               pb::RegisterDatasetResponse*) override {
    Caller caller;
    if (auto refused = Authorize(*context, "RegisterDataset", Access::kWrite, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (request->name().size() > kMaxName) {
      return TooLarge("name", request->name().size(), kMaxName);
    }
    if (request->dataset_json().size() > kMaxDatasetBytes) {
      return TooLarge("dataset_json", request->dataset_json().size(), kMaxDatasetBytes);
    }
    for (const Json& known : scheduler_->ListDatasets()) {
      if (known.Find("name")->as_string() == request->name() &&
          !OwnedBy(caller, known.StringOr("registered_by"))) {
        return Refuse(*context, "RegisterDataset", "owner", &caller,
                      grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                   "dataset '" + request->name() +
                                       "' was registered by another user (an admin may "
                                       "replace it)"));
      }
    }
    auto dataset = Json::Parse(request->dataset_json());
    if (!dataset.ok()) return ToGrpcStatus(dataset.status().WithContext("dataset_json"));
    if (!dataset->is_object()) return ToGrpcStatus(InvalidArgumentError("dataset_json: not an object"));
    if (Status served = SplitsFromService(request->name(), *dataset); !served.ok()) {
      return ToGrpcStatus(served);
    }
    return ToGrpcStatus(scheduler_->RegisterDataset(request->name(), *dataset, caller.Actor()));
  }

  grpc::Status ListDatasets(grpc::ServerContext* context, const pb::ListDatasetsRequest*,
                            pb::ListDatasetsResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ListDatasets", Access::kRead, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    for (const Json& d : scheduler_->ListDatasets()) response->add_datasets_json(d.Dump());
    return grpc::Status::OK;
  }

  // --- workers ---

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const pb::RegisterWorkerRequest* request,
                              pb::RegisterWorkerResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "RegisterWorker", Access::kWorker,
                                 &request->worker_id(), caller);
        !refused.ok()) {
      return refused;
    }
    for (const std::string* field : {&request->worker_id(), &request->build(), &request->address()}) {
      if (field->size() > kMaxName) return TooLarge("a name field", field->size(), kMaxName);
    }
    if (request->running_size() > kMaxEntries) {
      return TooLarge("running", static_cast<size_t>(request->running_size()), kMaxEntries);
    }
    WorkerRegistration r;
    r.actor = caller.Actor();
    r.id = request->worker_id();
    r.build = request->build();
    r.address = request->address();
    r.protocol_version = request->protocol_version();
    r.slots = request->resources().slots();
    r.cpu_cores = request->resources().cpu_cores();
    r.memory_mb = request->resources().memory_mb();
    for (const auto& running : request->running()) {
      r.running.push_back({running.trial_id(), running.attempt()});
    }
    auto outcome = scheduler_->RegisterWorker(r);
    if (!outcome.ok()) return ToGrpcStatus(outcome.status());
    response->set_session_id(outcome->session);
    response->set_heartbeat_interval_ms(outcome->heartbeat_interval_ms);
    response->set_worker_timeout_ms(outcome->worker_timeout_ms);
    for (const auto& kill : outcome->kill) {
      auto* k = response->add_kill();
      k->set_trial_id(kill.trial);
      k->set_attempt(kill.attempt);
    }
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context, const pb::HeartbeatRequest* request,
                         pb::HeartbeatResponse* response) override {
    Caller caller;
    if (auto refused =
            Authorize(*context, "Heartbeat", Access::kWorker, &request->worker_id(), caller);
        !refused.ok()) {
      return refused;
    }
    if (request->progress_size() > kMaxEntries || request->logs_size() > kMaxEntries ||
        request->held_size() > kMaxEntries) {
      return TooLarge("progress, logs or held entries",
                      static_cast<size_t>(std::max({request->progress_size(),
                                                    request->logs_size(), request->held_size()})),
                      kMaxEntries);
    }
    for (const auto& chunk : request->logs()) {
      if (chunk.data().size() > kMaxLogChunkBytes) {
        return TooLarge("a log chunk", chunk.data().size(), kMaxLogChunkBytes);
      }
    }
    std::vector<AttemptProgress> progress;
    for (const auto& p : request->progress()) {
      progress.push_back({p.trial_id(), p.attempt(), p.step(), p.total_steps(), p.loss(),
                          p.learning_rate(), p.images_per_second(), p.stage()});
    }
    std::vector<LogPiece> logs;
    for (const auto& chunk : request->logs()) {
      logs.push_back({chunk.trial_id(), chunk.attempt(), chunk.offset(), chunk.data()});
    }
    std::vector<AttemptRef> held;
    for (const auto& h : request->held()) held.push_back({h.trial_id(), h.attempt()});
    auto outcome = scheduler_->Heartbeat(request->worker_id(), request->session_id(), progress,
                                         logs, request->free_slots(), held);
    if (!outcome.ok()) return RefusedBySchedulerOr(*context, "Heartbeat", caller, outcome.status());
    response->set_reregister(outcome->reregister);
    RenewDataTokens(request->worker_id(), *outcome, response);
    for (const auto& a : outcome->assignments) {
      auto* out = response->add_assignments();
      out->set_trial_id(a.trial);
      out->set_attempt(a.attempt);
      out->set_job(a.job);
      out->set_config_json(a.config.Dump());
      out->set_device(a.device);
      auto* placement = out->mutable_placement();
      placement->set_output_dir(a.placement.output_dir);
      placement->set_checkpoint_dir(a.placement.checkpoint_dir);
      placement->set_data_path(a.placement.data_path);
      placement->set_data_service(a.placement.data_service);
      placement->set_data_dataset(a.placement.data_dataset);
      placement->set_pretrained(a.placement.pretrained);
      out->set_resume(a.resume);
      out->set_slots(a.slots);
      out->set_grace_period_ms(a.grace_period_ms);
      out->set_node_rank(a.node_rank);
      out->set_nodes(a.nodes);
      out->set_master_addr(a.master_addr);
      out->set_master_port(a.master_port);
      if (!data_token_key_.empty()) out->set_data_token(DataTokenFor({a.trial, a.attempt}));
    }
    for (const auto& kill : outcome->kill) {
      auto* k = response->add_kill();
      k->set_trial_id(kill.trial);
      k->set_attempt(kill.attempt);
    }
    for (const auto& ack : outcome->log_acks) {
      auto* a = response->add_log_acks();
      a->set_trial_id(ack.trial);
      a->set_attempt(ack.attempt);
      a->set_offset(ack.offset);
    }
    return grpc::Status::OK;
  }

  grpc::Status ReportTrialExit(grpc::ServerContext* context,
                               const pb::ReportTrialExitRequest* request,
                               pb::ReportTrialExitResponse*) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ReportTrialExit", Access::kWorker,
                                 &request->worker_id(), caller);
        !refused.ok()) {
      return refused;
    }
    if (request->result_json().size() > kMaxResultBytes) {
      return TooLarge("result_json", request->result_json().size(), kMaxResultBytes);
    }
    if (request->cause().size() > kMaxCauseBytes) {
      return TooLarge("cause", request->cause().size(), kMaxCauseBytes);
    }
    AttemptExit exit;
    exit.actor = caller.Actor();
    exit.worker = request->worker_id();
    exit.session = request->session_id();
    exit.trial = request->trial_id();
    exit.attempt = request->attempt();
    exit.exit_code = request->exit_code();
    exit.signal = request->signal();
    exit.result_json = request->result_json();
    exit.cause = request->cause();
    exit.stopped_by_request = request->stopped_by_request();
    exit.time_limit = request->time_limit();
    Status reported = scheduler_->ReportExit(exit);
    if (!reported.ok()) return RefusedBySchedulerOr(*context, "ReportTrialExit", caller, reported);
    return grpc::Status::OK;
  }

  // --- tokens ---

  grpc::Status CreateToken(grpc::ServerContext* context, const pb::CreateTokenRequest* request,
                           pb::CreateTokenResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "CreateToken", Access::kAdmin, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (tokens_ == nullptr) {
      return ToGrpcStatus(FailedPreconditionError(
          "this coordinator runs --insecure: it has no tokens (start it with --credentials)"));
    }
    auto role = security::ParseRole(request->role());
    if (!role.ok()) return ToGrpcStatus(role.status());
    if (*role == Role::kWorker && IsSlurmWorkerId(request->name())) {
      // Those ids are the Slurm backend's: each names one attempt, whose credential the
      // coordinator mints for that attempt's job alone.
      return ToGrpcStatus(InvalidArgumentError(
          "worker id '" + request->name().substr(0, kMaxName) +
          "': names starting with slurm- are reserved for the Slurm backend's attempts"));
    }
    const int64_t lifetime = request->lifetime_ms() == 0    ? security::kDefaultTokenLifetimeMs
                             : request->lifetime_ms() < 0 ? 0
                                                          : request->lifetime_ms();
    auto created = tokens_->Create(*role, request->name(), lifetime, caller);
    if (!created.ok()) return ToGrpcStatus(created.status());
    response->set_token(created->first);
    Json record = created->second.ToJson();
    record.as_object().erase("sha256");
    response->set_token_json(record.Dump());
    return grpc::Status::OK;
  }

  grpc::Status ListTokens(grpc::ServerContext* context, const pb::ListTokensRequest*,
                          pb::ListTokensResponse* response) override {
    Caller caller;
    if (auto refused = Authorize(*context, "ListTokens", Access::kAdmin, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (tokens_ == nullptr) return grpc::Status::OK;
    for (const auto& record : tokens_->List()) {
      Json json = record.ToJson();
      json.as_object().erase("sha256");
      response->add_tokens_json(json.Dump());
    }
    return grpc::Status::OK;
  }

  grpc::Status RevokeToken(grpc::ServerContext* context, const pb::RevokeTokenRequest* request,
                           pb::RevokeTokenResponse*) override {
    Caller caller;
    if (auto refused = Authorize(*context, "RevokeToken", Access::kAdmin, nullptr, caller);
        !refused.ok()) {
      return refused;
    }
    if (tokens_ == nullptr) return ToGrpcStatus(NotFoundError("no tokens (--insecure)"));
    return ToGrpcStatus(tokens_->Revoke(request->id(), caller));
  }

 private:
  // OK with `caller` set when the call's token allows `access` (and, for worker calls, names
  // the token's own worker id); otherwise the refusal, counted and logged.
  grpc::Status Authorize(const grpc::ServerContext& context, const char* rpc, Access access,
                         const std::string* worker_id, Caller& caller) {
    if (tokens_ == nullptr) {  // --insecure on loopback: everyone is everything
      caller = {"-", "insecure", access == Access::kWorker ? Role::kWorker : Role::kAdmin,
                worker_id != nullptr ? *worker_id : ""};
      return grpc::Status::OK;
    }
    auto authenticated = tokens_->Authenticate(BearerToken(context), clock_.WallMs());
    if (!authenticated.ok()) {
      const std::string message = authenticated.status().message();
      return Refuse(context, rpc, message.substr(0, message.find(':')), nullptr,
                    grpc::Status(grpc::StatusCode::UNAUTHENTICATED, message));
    }
    caller = *authenticated;
    if (!Allowed(caller.role, access)) {
      return Refuse(context, rpc, "role", &caller,
                    grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                 std::string("a ") + security::RoleName(caller.role) +
                                     " token may not call " + rpc));
    }
    if (access == Access::kWorker && worker_id != nullptr && *worker_id != caller.worker) {
      return Refuse(context, rpc, "worker_id", &caller,
                    grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                 "this token acts for worker '" + caller.worker + "', not '" +
                                     worker_id->substr(0, kMaxName) + "'"));
    }
    return grpc::Status::OK;
  }

  // Whether `caller` may change what `by` (a record's "name:token" creator) made: admins may
  // change anything, users what a credential of their own name made.
  static bool OwnedBy(const Caller& caller, const std::string& creator) {
    return caller.role == Role::kAdmin || creator.substr(0, creator.find(':')) == caller.name;
  }

  // The scheduler's refusals of a worker's call (an attempt it does not hold, a stale session)
  // are counted and logged like the others; other errors pass through.
  grpc::Status RefusedBySchedulerOr(const grpc::ServerContext& context, const char* rpc,
                                    const Caller& caller, const Status& status) {
    if (status.code() == StatusCode::kPermissionDenied) {
      return Refuse(context, rpc, "attempt", &caller, ToGrpcStatus(status));
    }
    if (status.code() == StatusCode::kAborted) {
      return Refuse(context, rpc, "session", &caller, ToGrpcStatus(status));
    }
    return ToGrpcStatus(status);
  }

  grpc::Status Refuse(const grpc::ServerContext& context, const char* rpc,
                      const std::string& reason, const Caller* caller, grpc::Status status) {
    metrics_.CountAuthFailure(AuthFailureReasons().count(reason) ? reason : "malformed");
    refusals_.Write(context, rpc,
                    caller != nullptr ? "credential '" + caller->name + "' " + caller->token_id +
                                            ", " + security::RoleName(caller->role)
                                      : std::string("no valid credential"),
                    status.error_message());
    return status;
  }

  std::string DataTokenFor(const AttemptRef& ref) const {
    security::DataClaims claims;
    claims.subject = "trial-" + std::to_string(ref.trial) + "/attempt-" + std::to_string(ref.attempt);
    claims.trial = ref.trial;
    claims.attempt = ref.attempt;
    claims.expires_ms = security::NowMs() + options_.data_token_lifetime_ms;
    return security::SignDataToken(claims, data_token_key_);
  }

  // Data tokens for the worker's current attempts whose token is a third of its lifetime old
  // (or unknown to this coordinator: issued before a restart).
  void RenewDataTokens(const std::string& worker, const HeartbeatOutcome& outcome,
                       pb::HeartbeatResponse* response) {
    if (data_token_key_.empty()) return;
    const int64_t now = security::NowMs();
    std::lock_guard<std::mutex> lock(data_tokens_mutex_);
    std::map<AttemptRef, int64_t>& issued = data_tokens_issued_[worker];
    std::map<AttemptRef, int64_t> next;
    std::set<AttemptRef> assigned;
    for (const auto& a : outcome.assignments) assigned.insert({a.trial, a.attempt});
    for (const AttemptRef& ref : outcome.current) {
      auto it = issued.find(ref);
      if (assigned.count(ref)) {
        next[ref] = now;  // the assignment carries its token
      } else if (it == issued.end() || now - it->second > options_.data_token_lifetime_ms / 3) {
        auto* token = response->add_data_tokens();
        token->set_trial_id(ref.trial);
        token->set_attempt(ref.attempt);
        token->set_token(DataTokenFor(ref));
        next[ref] = now;
      } else {
        next[ref] = it->second;
      }
    }
    issued = std::move(next);
  }

  // A registration naming a data service: its splits come from the service itself (the
  // coordinator asks it with a token of its own), checked against the folder's manifests
  // when a path is given too.
  Status SplitsFromService(const std::string& name, Json& dataset) {
    const Json* service = dataset.Find("service");
    if (service == nullptr) return OkStatus();
    if (!service->is_string() || service->as_string().empty()) {
      return InvalidArgumentError("service: host:port of a maestro-data server");
    }
    const Json* served_as_json = dataset.Find("served_as");
    const std::string served_as = served_as_json != nullptr && served_as_json->is_string() &&
                                          !served_as_json->as_string().empty()
                                      ? served_as_json->as_string()
                                      : name;
    dataset.as_object()["served_as"] = Json(served_as);
    dataloader::DataClientOptions client;
    client.connect_timeout_ms = 10000;
    if (!data_token_key_.empty()) {
      client.ca_file = options_.credentials_dir + "/" + security::kCaCertFile;
      security::DataClaims claims;
      claims.subject = "coordinator";
      claims.expires_ms = security::NowMs() + 60000;
      client.token = security::SignDataToken(claims, data_token_key_);
    }
    auto served = dataloader::ListServedSplits(service->as_string(), client);
    if (!served.ok()) return served.status();
    const Json* local = dataset.Find("splits");
    Json::Object splits;
    std::string what;
    for (const std::string& line : *served) {
      std::istringstream in(line);
      std::string ds, split, split_name, hash;
      int64_t count = 0;
      in >> ds >> split >> split_name >> hash >> count;
      what += (what.empty() ? "" : ", ") + ds + "/" + split;
      if (ds != served_as) continue;
      const Json* mine = local != nullptr && local->is_object() ? local->Find(split) : nullptr;
      const Json* mine_hash = mine != nullptr ? mine->Find("content_hash") : nullptr;
      if (mine_hash != nullptr && mine_hash->is_string() && mine_hash->as_string() != hash) {
        return FailedPreconditionError("split " + split + ": the service serves content " +
                                       hash.substr(0, 12) + ", the folder holds " +
                                       mine_hash->as_string().substr(0, 12));
      }
      splits[split] = Json(Json::Object{{"content_hash", hash}, {"count", count}});
    }
    if (splits.empty()) {
      return NotFoundError("the service at " + service->as_string() + " does not serve '" +
                           served_as + "' (it serves: " + (what.empty() ? "nothing" : what) + ")");
    }
    dataset.as_object()["splits"] = Json(std::move(splits));
    return OkStatus();
  }

  // Calls `round` every 250 ms until Shutdown.
  void Every250Ms(const std::function<void()>& round) {
    std::unique_lock<std::mutex> lock(tick_mutex_);
    while (!stopping_) {
      tick_cv_.wait_for(lock, std::chrono::milliseconds(250));
      if (stopping_) break;
      lock.unlock();
      round();
      lock.lock();
    }
  }

  void TickLoop() {
    Every250Ms([this] {
      scheduler_->Tick();
      if (exposer_) metrics_.Update(scheduler_->Snapshot());
    });
  }

  // The Slurm backend's rounds (sbatch, squeue, scancel) on a thread of their own: a slow
  // slurmctld never delays the worker-timeout checks.
  void BackendLoop() {
    Every250Ms([this] { scheduler_->PollBackend(); });
  }

  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<TokenRegistry> tokens_;  // null: --insecure
  // The scheduler's clock: bearer tokens expire on it. Data tokens use the real clock (the data
  // service checks them on its own).
  const Clock& clock_;
  CoordinatorOptions options_;
  std::string data_token_key_;
  std::mutex data_tokens_mutex_;
  std::map<std::string, std::map<AttemptRef, int64_t>> data_tokens_issued_;  // by worker
  RefusalLog refusals_{"maestro-coordinator"};
  CoordinatorMetrics metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::once_flag once_;
  std::thread ticker_, backend_poller_;
  std::mutex tick_mutex_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;
};

CoordinatorServer::CoordinatorServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CoordinatorServer::~CoordinatorServer() { impl_->Shutdown(); }

Result<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const CoordinatorOptions& options) {
  // Credentials first: a coordinator that would listen unprotected never opens its store.
  std::shared_ptr<grpc::ServerCredentials> tls;
  std::optional<security::TokenRecord> bootstrap;
  if (!options.credentials_dir.empty()) {
    const std::string& dir = options.credentials_dir;
    MAESTRO_ASSIGN_OR_RETURN(tls, MakeServerCredentials(dir + "/" + security::kCoordinatorCertFile,
                                                        dir + "/" + security::kCoordinatorKeyFile));
    if (PathExists(dir + "/" + security::kAdminTokenRecordFile)) {
      MAESTRO_ASSIGN_OR_RETURN(std::string text,
                               ReadFile(dir + "/" + security::kAdminTokenRecordFile));
      MAESTRO_ASSIGN_OR_RETURN(Json json, Json::Parse(text));
      MAESTRO_ASSIGN_OR_RETURN(bootstrap, security::TokenRecord::FromJson(json));
    }
  } else if (!options.insecure) {
    return InvalidArgumentError(
        "no credentials: give --credentials DIR (made by `maestro cluster init`), or --insecure "
        "to serve plaintext without authentication on a loopback address");
  } else if (!IsLoopbackAddress(options.listen)) {
    return InvalidArgumentError("--insecure serves only loopback addresses, not " +
                                options.listen + " (anyone on the network could submit work)");
  } else {
    tls = grpc::InsecureServerCredentials();
  }
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(options.db_dir));
  std::unique_ptr<TokenRegistry> tokens;
  if (!options.credentials_dir.empty()) {
    MAESTRO_ASSIGN_OR_RETURN(
        tokens, TokenRegistry::Open(*store, ClockOf(options), bootstrap ? &*bootstrap : nullptr));
  }
  SchedulerOptions scheduler_options = options.scheduler;
  if (scheduler_options.slurm.enabled() && tokens) {
    // Each Slurm attempt's worker gets a credential of its own, revoked when its job is gone.
    TokenRegistry* registry = tokens.get();
    const Caller by{"-", "coordinator", Role::kAdmin, ""};
    scheduler_options.slurm.mint = [registry, by](const std::string& worker,
                                                  int64_t lifetime_ms) -> Result<std::string> {
      MAESTRO_ASSIGN_OR_RETURN(auto created,
                               registry->Create(Role::kWorker, worker, lifetime_ms, by));
      return std::move(created.first);
    };
    scheduler_options.slurm.revoke = [registry, by](const std::string& worker) {
      for (const security::TokenRecord& token : registry->List()) {
        if (token.role != Role::kWorker || token.worker != worker || token.revoked_ms != 0)
          continue;
        if (Status s = registry->Revoke(token.id, by); !s.ok()) {
          std::cerr << "maestro-coordinator: warning: " << s.ToString() << std::endl;
        }
      }
    };
  }
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler,
                           Scheduler::Open(std::move(store), std::move(scheduler_options)));
  auto impl = std::make_unique<Impl>(std::move(scheduler), std::move(tokens), ClockOf(options));
  MAESTRO_RETURN_IF_ERROR(impl->Listen(options, tls));
  return std::unique_ptr<CoordinatorServer>(new CoordinatorServer(std::move(impl)));
}

int CoordinatorServer::port() const { return impl_->port(); }
int CoordinatorServer::metrics_port() const { return impl_->metrics_port(); }
Scheduler& CoordinatorServer::scheduler() { return impl_->scheduler(); }
void CoordinatorServer::Shutdown() { impl_->Shutdown(); }

}  // namespace maestro::coordinator
