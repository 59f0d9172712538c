#include "maestro/coordinator/service.h"

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "maestro/coordinator/store.h"
#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/grpc_status.h"
#include "maestro/shared/metrics_http.h"

namespace maestro::coordinator {

namespace pb = maestro::coordinator::v1;

namespace {

// The coordinator's Prometheus series, refreshed from Scheduler::Snapshot() twice a second.
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
                      .Help("Trial restarts by cause (crash, signal, retryable, worker_lost)")
                      .Register(*registry_)),
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
                    .Register(*registry_)) {}

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

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
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Family<prometheus::Gauge>& slots_;
  prometheus::Family<prometheus::Gauge>& step_;
  prometheus::Family<prometheus::Gauge>& loss_;
  prometheus::Family<prometheus::Gauge>& lr_;
  prometheus::Family<prometheus::Gauge>& images_;
  std::map<int64_t, Series> series_;
};

}  // namespace

class CoordinatorServer::Impl final : public pb::Coordinator::Service {
 public:
  explicit Impl(std::unique_ptr<Scheduler> scheduler) : scheduler_(std::move(scheduler)) {}

  Status Listen(const CoordinatorOptions& options) {
    if (!options.metrics_listen.empty()) {
      MAESTRO_ASSIGN_OR_RETURN(exposer_, ServeMetrics(options.metrics_listen, metrics_.registry()));
    }
    grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port fails
    builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return UnavailableError("cannot listen on " + options.listen +
                              " (address in use or malformed)");
    }
    ticker_ = std::thread([this] { TickLoop(); });
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
      if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    });
  }
  int port() const { return port_; }
  int metrics_port() const { return MetricsPort(exposer_.get()); }
  Scheduler& scheduler() { return *scheduler_; }

  // --- users ---

  grpc::Status CreateExperiment(grpc::ServerContext*, const pb::CreateExperimentRequest* request,
                                pb::CreateExperimentResponse* response) override {
    auto tree = Json::Parse(request->experiment_json());
    if (!tree.ok()) return ToGrpcStatus(tree.status().WithContext("experiment_json"));
    auto created = scheduler_->CreateExperiment(*tree, request->idempotency_key());
    if (!created.ok()) return ToGrpcStatus(created.status());
    response->set_experiment_id(created->id);
    response->set_existed(created->existed);
    for (int64_t id : created->trials) response->add_trial_ids(id);
    response->set_reused_trials(static_cast<int64_t>(created->reused.size()));
    return grpc::Status::OK;
  }

  grpc::Status ListExperiments(grpc::ServerContext*, const pb::ListExperimentsRequest*,
                               pb::ListExperimentsResponse* response) override {
    for (const Json& e : scheduler_->ListExperiments()) response->add_experiments_json(e.Dump());
    return grpc::Status::OK;
  }

  grpc::Status DescribeExperiment(grpc::ServerContext*,
                                  const pb::DescribeExperimentRequest* request,
                                  pb::DescribeExperimentResponse* response) override {
    auto described = scheduler_->DescribeExperiment(request->experiment_id());
    if (!described.ok()) return ToGrpcStatus(described.status());
    response->set_experiment_json(described->first.Dump());
    for (const Json& trial : described->second) response->add_trials_json(trial.Dump());
    return grpc::Status::OK;
  }

  grpc::Status CancelExperiment(grpc::ServerContext*, const pb::CancelExperimentRequest* request,
                                pb::CancelExperimentResponse* response) override {
    auto canceled = scheduler_->CancelExperiment(request->experiment_id());
    if (!canceled.ok()) return ToGrpcStatus(canceled.status());
    response->set_canceled_queued(canceled->first);
    response->set_stopping(canceled->second);
    return grpc::Status::OK;
  }

  grpc::Status GetTrialLogs(grpc::ServerContext*, const pb::GetTrialLogsRequest* request,
                            pb::GetTrialLogsResponse* response) override {
    auto logs = scheduler_->Logs(request->trial_id(), request->offset(), request->max_bytes());
    if (!logs.ok()) return ToGrpcStatus(logs.status());
    response->set_data(std::move(logs->data));
    response->set_next_offset(logs->next_offset);
    response->set_state(logs->state);
    return grpc::Status::OK;
  }

  grpc::Status ListEvents(grpc::ServerContext*, const pb::ListEventsRequest* request,
                          pb::ListEventsResponse* response) override {
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

  grpc::Status ListWorkers(grpc::ServerContext*, const pb::ListWorkersRequest*,
                           pb::ListWorkersResponse* response) override {
    for (const Json& w : scheduler_->ListWorkers()) response->add_workers_json(w.Dump());
    return grpc::Status::OK;
  }

  grpc::Status RegisterDataset(grpc::ServerContext*, const pb::RegisterDatasetRequest* request,
                               pb::RegisterDatasetResponse*) override {
    auto dataset = Json::Parse(request->dataset_json());
    if (!dataset.ok()) return ToGrpcStatus(dataset.status().WithContext("dataset_json"));
    return ToGrpcStatus(scheduler_->RegisterDataset(request->name(), *dataset));
  }

  grpc::Status ListDatasets(grpc::ServerContext*, const pb::ListDatasetsRequest*,
                            pb::ListDatasetsResponse* response) override {
    for (const Json& d : scheduler_->ListDatasets()) response->add_datasets_json(d.Dump());
    return grpc::Status::OK;
  }

  // --- workers ---

  grpc::Status RegisterWorker(grpc::ServerContext*, const pb::RegisterWorkerRequest* request,
                              pb::RegisterWorkerResponse* response) override {
    WorkerRegistration r;
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

  grpc::Status Heartbeat(grpc::ServerContext*, const pb::HeartbeatRequest* request,
                         pb::HeartbeatResponse* response) override {
    std::vector<TrialProgressReport> progress;
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
    if (!outcome.ok()) return ToGrpcStatus(outcome.status());
    response->set_reregister(outcome->reregister);
    for (const auto& a : outcome->assignments) {
      auto* out = response->add_assignments();
      out->set_trial_id(a.trial);
      out->set_attempt(a.attempt);
      out->set_job(a.job);
      out->set_config_json(a.config.Dump());
      out->set_resume(a.resume);
      out->set_slots(a.slots);
      out->set_grace_period_ms(a.grace_period_ms);
      out->set_node_rank(a.node_rank);
      out->set_nodes(a.nodes);
      out->set_master_addr(a.master_addr);
      out->set_master_port(a.master_port);
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

  grpc::Status ReportTrialExit(grpc::ServerContext*, const pb::ReportTrialExitRequest* request,
                               pb::ReportTrialExitResponse*) override {
    TrialExit exit;
    exit.worker = request->worker_id();
    exit.session = request->session_id();
    exit.trial = request->trial_id();
    exit.attempt = request->attempt();
    exit.exit_code = request->exit_code();
    exit.signal = request->signal();
    exit.result_json = request->result_json();
    exit.cause = request->cause();
    exit.stopped_by_request = request->stopped_by_request();
    return ToGrpcStatus(scheduler_->ReportExit(exit));
  }

 private:
  void TickLoop() {
    std::unique_lock<std::mutex> lock(tick_mutex_);
    while (!stopping_) {
      tick_cv_.wait_for(lock, std::chrono::milliseconds(250));
      if (stopping_) break;
      lock.unlock();
      scheduler_->Tick();
      if (exposer_) metrics_.Update(scheduler_->Snapshot());
      lock.lock();
    }
  }

  std::unique_ptr<Scheduler> scheduler_;
  CoordinatorMetrics metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::once_flag once_;
  std::thread ticker_;
  std::mutex tick_mutex_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;
};

CoordinatorServer::CoordinatorServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CoordinatorServer::~CoordinatorServer() { impl_->Shutdown(); }

Result<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const CoordinatorOptions& options) {
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(options.db_dir));
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler,
                           Scheduler::Open(std::move(store), options.scheduler));
  auto impl = std::make_unique<Impl>(std::move(scheduler));
  MAESTRO_RETURN_IF_ERROR(impl->Listen(options));
  return std::unique_ptr<CoordinatorServer>(new CoordinatorServer(std::move(impl)));
}

int CoordinatorServer::port() const { return impl_->port(); }
int CoordinatorServer::metrics_port() const { return impl_->metrics_port(); }
Scheduler& CoordinatorServer::scheduler() { return impl_->scheduler(); }
void CoordinatorServer::Shutdown() { impl_->Shutdown(); }

}  // namespace maestro::coordinator
