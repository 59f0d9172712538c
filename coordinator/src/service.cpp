#include "maestro/coordinator/service.h"

#include <grpcpp/grpcpp.h>

#include <mutex>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/coordinator/store.h"
#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/grpc_status.h"

namespace maestro::coordinator {

namespace pb = maestro::coordinator::v1;

class CoordinatorServer::Impl final : public pb::Coordinator::Service {
 public:
  explicit Impl(std::unique_ptr<Store> store) : store_(std::move(store)) {}

  Status Listen(const std::string& listen) {
    grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port fails
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return UnavailableError("cannot listen on " + listen + " (address in use or malformed)");
    }
    return OkStatus();
  }

  void Shutdown() {
    std::call_once(once_, [this] {
      if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    });
  }
  int port() const { return port_; }

  grpc::Status CreateExperiment(grpc::ServerContext*, const pb::CreateExperimentRequest* request,
                                pb::CreateExperimentResponse* response) override {
    auto tree = Json::Parse(request->experiment_json());
    if (!tree.ok()) return ToGrpcStatus(tree.status().WithContext("experiment_json"));
    auto spec = ParseExperiment(*tree, "");
    if (!spec.ok()) return ToGrpcStatus(spec.status());
    auto search = MakeSearchMethod(*spec);
    if (!search.ok()) return ToGrpcStatus(search.status());
    std::vector<NewTrial> trials;
    for (const auto& trial : (*search)->Start()) {
      auto identity = TrialIdentity(*spec, trial.hparams);
      if (!identity.ok()) {
        return ToGrpcStatus(
            identity.status().WithContext("trial " + std::to_string(trial.ordinal)));
      }
      trials.push_back({*identity, trial.hparams});
    }
    if (trials.empty()) return ToGrpcStatus(InvalidArgumentError("the experiment has no trials"));
    Json record(Json::Object{
        {"name", spec->name}, {"kind", spec->kind}, {"dataset", spec->dataset}, {"spec", *tree}});
    auto created = store_->CreateExperiment(record, trials, request->idempotency_key());
    if (!created.ok()) return ToGrpcStatus(created.status());
    response->set_experiment_id(created->id);
    response->set_existed(created->existed);
    for (int64_t id : created->trials) response->add_trial_ids(id);
    response->set_reused_trials(static_cast<int64_t>(created->reused.size()));
    return grpc::Status::OK;
  }

  grpc::Status ListExperiments(grpc::ServerContext*, const pb::ListExperimentsRequest*,
                               pb::ListExperimentsResponse* response) override {
    for (const Json& e : store_->Experiments()) {
      Json summary(
          Json::Object{{"id", *e.Find("id")},
                       {"name", *e.Find("name")},
                       {"kind", *e.Find("kind")},
                       {"dataset", *e.Find("dataset")},
                       {"state", *e.Find("state")},
                       {"trials", static_cast<int64_t>(e.Find("trials")->as_array().size())}});
      response->add_experiments_json(summary.Dump());
    }
    return grpc::Status::OK;
  }

  grpc::Status DescribeExperiment(grpc::ServerContext*,
                                  const pb::DescribeExperimentRequest* request,
                                  pb::DescribeExperimentResponse* response) override {
    auto experiment = store_->Experiment(request->experiment_id());
    if (!experiment.ok()) {
      return ToGrpcStatus(
          NotFoundError("no experiment " + std::to_string(request->experiment_id())));
    }
    response->set_experiment_json(experiment->Dump());
    for (const Json& id : experiment->Find("trials")->as_array()) {
      auto trial = store_->Trial(id.as_int());
      if (!trial.ok()) return ToGrpcStatus(trial.status());
      response->add_trials_json(trial->Dump());
    }
    return grpc::Status::OK;
  }

 private:
  std::unique_ptr<Store> store_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::once_flag once_;
};

CoordinatorServer::CoordinatorServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CoordinatorServer::~CoordinatorServer() { impl_->Shutdown(); }

Result<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(const std::string& db_dir,
                                                                    const std::string& listen) {
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(db_dir));
  auto impl = std::make_unique<Impl>(std::move(store));
  MAESTRO_RETURN_IF_ERROR(impl->Listen(listen));
  return std::unique_ptr<CoordinatorServer>(new CoordinatorServer(std::move(impl)));
}

int CoordinatorServer::port() const { return impl_->port(); }
void CoordinatorServer::Shutdown() { impl_->Shutdown(); }

}  // namespace maestro::coordinator
