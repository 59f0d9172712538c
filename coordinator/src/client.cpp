#include "maestro/coordinator/client.h"

#include <grpcpp/grpcpp.h>

#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/grpc_auth.h"
#include "maestro/shared/grpc_status.h"

namespace maestro::coordinator {

namespace pb = maestro::coordinator::v1;

namespace {

std::chrono::system_clock::time_point Deadline(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

template <typename Texts>
Result<std::vector<Json>> ParseAll(const Texts& texts) {
  std::vector<Json> out;
  for (const auto& text : texts) {
    MAESTRO_ASSIGN_OR_RETURN(Json json, Json::Parse(text));
    out.push_back(std::move(json));
  }
  return out;
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
    return ParseAll(response.experiments_json());
  }

  Result<std::pair<int64_t, int64_t>> CancelExperiment(int64_t id) override {
    pb::CancelExperimentRequest request;
    request.set_experiment_id(id);
    pb::CancelExperimentResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->CancelExperiment(&context, request, &response), address_));
    return std::make_pair(response.canceled_queued(), response.stopping());
  }

  Result<int64_t> ContinueExperiment(int64_t id) override {
    pb::ContinueExperimentRequest request;
    request.set_experiment_id(id);
    pb::ContinueExperimentResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->ContinueExperiment(&context, request, &response), address_));
    return response.queued();
  }

  Result<std::vector<int64_t>> ExtendExperiment(int64_t id, int64_t trials) override {
    pb::ExtendExperimentRequest request;
    request.set_experiment_id(id);
    request.set_trials(trials);
    pb::ExtendExperimentResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(120));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->ExtendExperiment(&context, request, &response), address_));
    return std::vector<int64_t>(response.trial_ids().begin(), response.trial_ids().end());
  }

  Result<std::pair<Json, Json>> GetTrial(int64_t trial) override {
    pb::GetTrialRequest request;
    request.set_trial_id(trial);
    pb::GetTrialResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->GetTrial(&context, request, &response), address_));
    MAESTRO_ASSIGN_OR_RETURN(Json record, Json::Parse(response.trial_json()));
    MAESTRO_ASSIGN_OR_RETURN(Json configs, Json::Parse(response.configs_json()));
    return std::make_pair(std::move(record), std::move(configs));
  }

  Result<std::vector<Json>> MetricHistory(int64_t experiment, int64_t trial) override {
    std::vector<Json> out;
    std::string token;
    do {
      pb::GetMetricHistoryRequest request;
      request.set_experiment_id(experiment);
      request.set_trial_id(trial);
      request.set_page_token(token);
      pb::GetMetricHistoryResponse response;
      grpc::ClientContext context;
      context.set_deadline(Deadline(30));
      MAESTRO_RETURN_IF_ERROR(
          FromGrpcStatus(stub_->GetMetricHistory(&context, request, &response), address_));
      MAESTRO_ASSIGN_OR_RETURN(std::vector<Json> page, ParseAll(response.records_json()));
      out.insert(out.end(), std::make_move_iterator(page.begin()),
                 std::make_move_iterator(page.end()));
      token = response.next_page_token();
    } while (!token.empty());
    return out;
  }

  Result<LogSlice> TrialLogs(int64_t trial, int64_t offset) override {
    pb::GetTrialLogsRequest request;
    request.set_trial_id(trial);
    request.set_offset(offset);
    pb::GetTrialLogsResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->GetTrialLogs(&context, request, &response), address_));
    return LogSlice{response.data(), response.next_offset(), response.state()};
  }

  Result<std::vector<Json>> ListWorkers() override {
    pb::ListWorkersResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(FromGrpcStatus(
        stub_->ListWorkers(&context, pb::ListWorkersRequest(), &response), address_));
    return ParseAll(response.workers_json());
  }

  Result<std::vector<Json>> ListEvents(int64_t from_seq, int64_t experiment) override {
    pb::ListEventsRequest request;
    request.set_from_seq(from_seq);
    request.set_experiment_id(experiment);
    pb::ListEventsResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->ListEvents(&context, request, &response), address_));
    return ParseAll(response.events_json());
  }

  Status RegisterDataset(const std::string& name, const Json& dataset) override {
    pb::RegisterDatasetRequest request;
    request.set_name(name);
    request.set_dataset_json(dataset.Dump());
    pb::RegisterDatasetResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    return FromGrpcStatus(stub_->RegisterDataset(&context, request, &response), address_);
  }

  Result<std::vector<Json>> ListDatasets() override {
    pb::ListDatasetsResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(FromGrpcStatus(
        stub_->ListDatasets(&context, pb::ListDatasetsRequest(), &response), address_));
    return ParseAll(response.datasets_json());
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
    MAESTRO_ASSIGN_OR_RETURN(std::vector<Json> trials, ParseAll(response.trials_json()));
    return std::make_pair(std::move(experiment), std::move(trials));
  }

  Result<std::pair<std::string, Json>> CreateToken(const std::string& role, const std::string& name,
                                                   int64_t lifetime_ms) override {
    pb::CreateTokenRequest request;
    request.set_role(role);
    request.set_name(name);
    request.set_lifetime_ms(lifetime_ms);
    pb::CreateTokenResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(
        FromGrpcStatus(stub_->CreateToken(&context, request, &response), address_));
    MAESTRO_ASSIGN_OR_RETURN(Json record, Json::Parse(response.token_json()));
    return std::make_pair(response.token(), std::move(record));
  }

  Result<std::vector<Json>> ListTokens() override {
    pb::ListTokensResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    MAESTRO_RETURN_IF_ERROR(FromGrpcStatus(
        stub_->ListTokens(&context, pb::ListTokensRequest(), &response), address_));
    return ParseAll(response.tokens_json());
  }

  Status RevokeToken(const std::string& id) override {
    pb::RevokeTokenRequest request;
    request.set_id(id);
    pb::RevokeTokenResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    return FromGrpcStatus(stub_->RevokeToken(&context, request, &response), address_);
  }

 private:
  std::unique_ptr<pb::Coordinator::Stub> stub_;
  std::string address_;
};

}  // namespace

Result<std::unique_ptr<CoordinatorClient>> ConnectCoordinator(const std::string& address,
                                                              const CoordinatorAuth& given,
                                                              int64_t timeout_ms) {
  ClientAuth auth = ClientAuthFromEnvironment();
  if (!given.ca_file.empty()) auth.ca_file = given.ca_file;
  if (!given.token_file.empty()) auth.token_file = given.token_file;
  MAESTRO_ASSIGN_OR_RETURN(auto credentials, MakeChannelCredentials(auth, address));
  auto channel = grpc::CreateChannel(address, credentials);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(timeout_ms))) {
    const std::string why = ExplainTlsFailure(address, auth);
    return UnavailableError("cannot reach the coordinator at " + address + " (waited " +
                            std::to_string(timeout_ms) + " ms; " +
                            (why.empty() ? "is maestro-coordinator running?" : why) + ")");
  }
  return std::unique_ptr<CoordinatorClient>(new GrpcCoordinatorClient(std::move(channel), address));
}

}  // namespace maestro::coordinator
