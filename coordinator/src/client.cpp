#include "maestro/coordinator/client.h"

#include <grpcpp/grpcpp.h>

#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/grpc_status.h"

namespace maestro::coordinator {

namespace pb = maestro::coordinator::v1;

namespace {

std::chrono::system_clock::time_point Deadline(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

class GrpcCoordinatorClient : public CoordinatorClient {
 public:
  GrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel, std::string address)
      : stub_(pb::Coordinator::NewStub(std::move(channel))), address_(std::move(address)) {}

  Result<ExperimentCreated> CreateExperiment(const Json& experiment,
                                             const std::string& idempotency_key) override {
    pb::CreateExperimentRequest request;
    request.set_idempotency_key(idempotency_key);
    request.set_experiment_json(experiment.Dump());
    pb::CreateExperimentResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->CreateExperiment(&context, request, &response), address_));
    ExperimentCreated out;
    out.id = response.experiment_id();
    out.existed = response.existed();
    out.trials.assign(response.trial_ids().begin(), response.trial_ids().end());
    out.reused_trials = response.reused_trials();
    return out;
  }

  Result<std::vector<Json>> ListExperiments() override {
    pb::ListExperimentsResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(FromGrpcStatus(
        stub_->ListExperiments(&context, pb::ListExperimentsRequest(), &response), address_));
    std::vector<Json> out;
    for (const auto& text : response.experiments_json()) {
      MAESTRO_ASSIGN_OR_RETURN(Json json, Json::Parse(text));
      out.push_back(std::move(json));
    }
    return out;
  }

  Result<std::pair<Json, std::vector<Json>>> DescribeExperiment(int64_t id) override {
    pb::DescribeExperimentRequest request;
    request.set_experiment_id(id);
    pb::DescribeExperimentResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->DescribeExperiment(&context, request, &response), address_));
    MAESTRO_ASSIGN_OR_RETURN(Json experiment, Json::Parse(response.experiment_json()));
    std::vector<Json> trials;
    for (const auto& text : response.trials_json()) {
      MAESTRO_ASSIGN_OR_RETURN(Json json, Json::Parse(text));
      trials.push_back(std::move(json));
    }
    return std::make_pair(std::move(experiment), std::move(trials));
  }

 private:
  std::unique_ptr<pb::Coordinator::Stub> stub_;
  std::string address_;
};

}  // namespace

Result<std::unique_ptr<CoordinatorClient>> ConnectCoordinator(const std::string& address,
                                                              int64_t timeout_ms) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(timeout_ms))) {
    return UnavailableError("cannot reach the coordinator at " + address + " (waited " +
                            std::to_string(timeout_ms) + " ms; is maestro-coordinator running?)");
  }
  return std::unique_ptr<CoordinatorClient>(new GrpcCoordinatorClient(std::move(channel), address));
}

}  // namespace maestro::coordinator
