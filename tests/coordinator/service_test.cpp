// maestro-coordinator's gRPC server on 127.0.0.1 with a real RocksDB store, driven by a raw
// gRPC client playing the workers: protocol versions, bad requests, stale attempts, adoption
// on re-registration, restarts within max_restarts, permanent failures, lost workers, a
// coordinator restarted on its state, and a pipeline moving from pretraining to its probe.
#include "maestro/coordinator/service.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <set>

#include "maestro/coordinator/client.h"
#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/store.h"
#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/clock.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/json.h"
#include "maestro/shared/security.h"
#include "maestro/shared/version.h"

namespace maestro::coordinator {
namespace {

namespace pb = maestro::coordinator::v1;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/maestro_service_";
    dir_.append(std::to_string(::getpid()));
    dir_.append("_");
    dir_.append(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(RemoveTree(dir_).ok());
    ASSERT_TRUE(MakeDirectories(dir_ + "/runs").ok());
    security::ClusterInit init;
    init.dir = dir_ + "/cluster";
    auto admin = security::InitCluster(init);
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    admin_token_ = *admin;
    Start(10000);
  }
  void TearDown() override {
    server_.reset();
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }

  void Start(int64_t worker_timeout_ms) {
    server_.reset();
    CoordinatorOptions options;
    options.db_dir = dir_ + "/db";
    options.listen = "127.0.0.1:0";
    options.scheduler.runs_dir = dir_ + "/runs";
    auto roots = PathRoots::Make({dir_, "/data", "/a"}, "--data-root", false);
    ASSERT_TRUE(roots.ok());
    options.scheduler.data_roots = *roots;
    options.scheduler.heartbeat_interval_ms = 100;
    options.scheduler.worker_timeout_ms = worker_timeout_ms;
    options.scheduler.grace_period_ms = 1000;
    options.scheduler.clock = &clock_;
    options.credentials_dir = dir_ + "/cluster";
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto ca = ReadFile(dir_ + "/cluster/ca.crt");
    ASSERT_TRUE(ca.ok());
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = *ca;
    stub_ = pb::Coordinator::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_->port()), grpc::SslCredentials(tls)));
  }

  // A call as `token`'s holder; by default as the admin, and worker calls as the worker they
  // name (its token made on first use).
  template <typename Request, typename Response, typename Call>
  grpc::Status Rpc(Call call, const Request& request, Response* response,
                   const std::string* token = nullptr) {
    std::string bearer = admin_token_;
    if constexpr (requires { request.worker_id(); }) bearer = WorkerToken(request.worker_id());
    if (token != nullptr) bearer = *token;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!bearer.empty()) context.AddMetadata("authorization", "Bearer " + bearer);
    return (stub_.get()->*call)(&context, request, response);
  }

  // A new token of `role` named `name` (lifetime_ms as CreateTokenRequest's).
  std::string NewToken(const std::string& role, const std::string& name, int64_t lifetime_ms = 0) {
    pb::CreateTokenRequest request;
    request.set_role(role);
    request.set_name(name);
    request.set_lifetime_ms(lifetime_ms);
    pb::CreateTokenResponse response;
    grpc::Status s = Rpc(&pb::Coordinator::Stub::CreateToken, request, &response, &admin_token_);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.token();
  }

  std::string WorkerToken(const std::string& id) {
    if (!worker_tokens_.count(id)) worker_tokens_[id] = NewToken("worker", id);
    return worker_tokens_[id];
  }

  grpc::Status RegisterDataset(const std::string& name, const std::string& path) {
    pb::RegisterDatasetRequest request;
    request.set_name(name);
    request.set_dataset_json(
        Json(Json::Object{
                 {"path", path},
                 {"splits", Json(Json::Object{{"train", Json(Json::Object{{"content_hash", "abc"},
                                                                          {"count", 10}})}})}})
            .Dump());
    pb::RegisterDatasetResponse response;
    return Rpc(&pb::Coordinator::Stub::RegisterDataset, request, &response);
  }

  // An experiment file over the shipped pretraining config; `extra` is appended YAML.
  grpc::Status Create(const std::string& extra, pb::CreateExperimentResponse* response,
                      const std::string& dataset = "fmnist") {
    const std::string path = dir_ + "/experiment.yaml";
    std::string text = "name: t\nkind: pretrain\ndataset: " + dataset + "\nconfig: ";
    text.append(MAESTRO_SOURCE_DIR "/configs/fmnist_pretrain.yaml\n");
    text.append(extra);
    EXPECT_TRUE(WriteFileAtomic(path, text).ok());
    auto tree = LoadExperimentInlined(path);
    EXPECT_TRUE(tree.ok()) << tree.status().ToString();
    pb::CreateExperimentRequest request;
    request.set_experiment_json(tree.ok() ? tree->Dump() : "{}");
    return Rpc(&pb::Coordinator::Stub::CreateExperiment, request, response);
  }

  grpc::Status Register(const std::string& id, pb::RegisterWorkerResponse* response,
                        std::vector<std::pair<int64_t, int64_t>> running = {},
                        int64_t protocol = kWorkerProtocolVersion) {
    pb::RegisterWorkerRequest request;
    request.set_worker_id(id);
    request.set_protocol_version(protocol);
    request.set_build("test");
    request.mutable_resources()->set_slots(1);
    request.mutable_resources()->set_cpu_cores(2);
    request.mutable_resources()->set_memory_mb(4096);
    for (const auto& [trial, attempt] : running) {
      auto* r = request.add_running();
      r->set_trial_id(trial);
      r->set_attempt(attempt);
    }
    grpc::Status s = Rpc(&pb::Coordinator::Stub::RegisterWorker, request, response);
    if (s.ok()) sessions_[id] = response->session_id();
    return s;
  }

  pb::HeartbeatResponse Heartbeat(const std::string& id, const std::string& session,
                                  std::vector<std::pair<int64_t, int64_t>> progress = {},
                                  int64_t free_slots = 1) {
    pb::HeartbeatRequest request;
    request.set_worker_id(id);
    request.set_session_id(session);
    request.set_free_slots(free_slots);
    for (const auto& [trial, attempt] : progress) {
      auto* held = request.add_held();  // a running trainer is held
      held->set_trial_id(trial);
      held->set_attempt(attempt);
      auto* p = request.add_progress();
      p->set_trial_id(trial);
      p->set_attempt(attempt);
      p->set_step(5);
      p->set_total_steps(10);
      p->set_loss(0.5);
      p->set_stage("pretrain");
    }
    pb::HeartbeatResponse response;
    EXPECT_TRUE(Rpc(&pb::Coordinator::Stub::Heartbeat, request, &response).ok());
    return response;
  }

  grpc::Status Exit(const std::string& worker, int64_t trial, int64_t attempt, int code,
                    const std::string& result_json = "") {
    pb::ReportTrialExitRequest request;
    request.set_worker_id(worker);
    request.set_session_id(sessions_[worker]);
    request.set_trial_id(trial);
    request.set_attempt(attempt);
    request.set_exit_code(code);
    request.set_result_json(result_json);
    request.set_cause("error: boom");
    pb::ReportTrialExitResponse response;
    return Rpc(&pb::Coordinator::Stub::ReportTrialExit, request, &response);
  }

  Json Trial(int64_t experiment, size_t index = 0) {
    pb::DescribeExperimentRequest request;
    request.set_experiment_id(experiment);
    pb::DescribeExperimentResponse response;
    EXPECT_TRUE(Rpc(&pb::Coordinator::Stub::DescribeExperiment, request, &response).ok());
    auto trial = Json::Parse(response.trials_json(static_cast<int>(index)));
    return trial.ok() ? *trial : Json();
  }

  ManualClock clock_;  // the coordinator's: leases, timeouts and token lifetimes move only
                       // when a test says
  std::string dir_;
  std::string admin_token_;
  std::map<std::string, std::string> worker_tokens_, sessions_;  // by worker id
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<pb::Coordinator::Stub> stub_;
};

TEST_F(ServiceTest, WorkerOfAnotherProtocolIsRefusedWithBothVersions) {
  pb::RegisterWorkerResponse response;
  const grpc::Status status = Register("w1", &response, {}, kWorkerProtocolVersion + 1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("protocol " + std::to_string(kWorkerProtocolVersion + 1)),
            std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("speaks " + std::to_string(kWorkerProtocolVersion)),
            std::string::npos);
  EXPECT_TRUE(Register("w1", &response).ok());  // the daemon is still up
}

TEST_F(ServiceTest, BadRequestsAreAnsweredWithTheProblemNamed) {
  pb::CreateExperimentResponse created;
  pb::CreateExperimentRequest malformed;
  malformed.set_experiment_json("{not json");
  grpc::Status s = Rpc(&pb::Coordinator::Stub::CreateExperiment, malformed, &created);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("experiment_json"), std::string::npos) << s.error_message();

  s = Create("", &created, "imagenet");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("unknown dataset 'imagenet'"), std::string::npos)
      << s.error_message();

  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  s = RegisterDataset("relative", "data/fmnist");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("not absolute"), std::string::npos) << s.error_message();

  // An empty grid, sent as JSON straight to the server (the CLI would refuse it first).
  pb::CreateExperimentRequest empty;
  empty.set_experiment_json(
      R"({"name": "t", "kind": "pretrain", "dataset": "fmnist", "config": {},)"
      R"( "hyperparameters": {"model.mask_ratio": {"type": "categorical", "vals": []}}})");
  s = Rpc(&pb::Coordinator::Stub::CreateExperiment, empty, &created);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("model.mask_ratio"), std::string::npos) << s.error_message();

  pb::RegisterWorkerResponse registered;
  ASSERT_TRUE(Register("w1", &registered).ok());
  s = Create("resources: {cpu_cores: 64}\n", &created);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("resources.cpu_cores: 64 cores"), std::string::npos)
      << s.error_message();
  s = Create("resources: {slots_per_trial: 2}\n", &created);  // w1 offers 1 slot
  EXPECT_NE(s.error_message().find("resources.slots_per_trial: 2 slots per trial"),
            std::string::npos)
      << s.error_message();

  pb::DescribeExperimentRequest describe;
  describe.set_experiment_id(42);
  pb::DescribeExperimentResponse described;
  s = Rpc(&pb::Coordinator::Stub::DescribeExperiment, describe, &described);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("no experiment 42"), std::string::npos);
  pb::GetTrialLogsRequest logs;
  logs.set_trial_id(7);
  pb::GetTrialLogsResponse logs_response;
  s = Rpc(&pb::Coordinator::Stub::GetTrialLogs, logs, &logs_response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);

  // A heartbeat of an unknown session is told to register again; an exit of a trial the
  // worker's session never held is PERMISSION_DENIED.
  EXPECT_TRUE(Heartbeat("w9", "nope").reregister());
  EXPECT_EQ(Exit("w1", 99, 1, 0).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Register("w2", &registered).ok());  // still serving
}

TEST_F(ServiceTest, NoFileARequestNamesIsOpenedAndNoPathLeavesTheRoots) {
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  auto create_json = [&](const std::string& json) {
    pb::CreateExperimentRequest request;
    request.set_experiment_json(json);
    pb::CreateExperimentResponse response;
    return Rpc(&pb::Coordinator::Stub::CreateExperiment, request, &response);
  };
  // A config path: the same refusal for a file that exists and one that does not (no
  // existence oracle), and nothing of the file in it.
  auto hostname = ReadFile("/etc/hostname");
  ASSERT_TRUE(hostname.ok());
  for (const std::string path : {"/etc/hostname", "/etc/shadow", "/nonexistent/x.yaml"}) {
    grpc::Status s = create_json(R"({"name": "t", "kind": "pretrain", "dataset": "fmnist", )"
                                 R"("config": ")" +
                                 path + R"("})");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << path;
    EXPECT_EQ(s.error_message(),
              "config: '" + path +
                  "' names a file, and the coordinator reads no file a request "
                  "names: send the config's content (`maestro experiment create FILE` reads the "
                  "files FILE names and sends them inline)");
  }
  // Datasets outside --data-root, or written to dodge it.
  grpc::Status s = RegisterDataset("etc", "/etc");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("path: '/etc' is outside --data-root"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(RegisterDataset("dodge", "/data/../etc").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RegisterDataset("prefix", "/database").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  pb::ListDatasetsRequest list;
  pb::ListDatasetsResponse listed;
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::ListDatasets, list, &listed).ok());
  EXPECT_EQ(listed.datasets_json_size(), 1);  // fmnist only
  // A trial config naming its own data service, in the config, an evaluation or a
  // hyperparameter; searching where trials write; weights from outside the roots.
  s = create_json(R"({"name": "t", "kind": "pretrain", "dataset": "fmnist", )"
                  R"("config": {"data": {"service": "10.9.9.9:7000"}}})");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("config.data.service: a trial config cannot name a data "
                                   "service"),
            std::string::npos)
      << s.error_message();
  s = create_json(R"({"name": "t", "kind": "pipeline", "dataset": "fmnist", "config": {}, )"
                  R"("evaluations": [{"kind": "linprobe", "config": )"
                  R"({"data": {"service": "10.9.9.9:7000"}}}]})");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("evaluations[0].config.data.service"), std::string::npos)
      << s.error_message();
  for (const std::string key : {"data.service", "data.path", "run.output_dir", "checkpoint.dir"}) {
    s = create_json(R"({"name": "t", "kind": "pretrain", "dataset": "fmnist", "config": {}, )"
                    R"("hyperparameters": {")" +
                    key + R"(": ["/tmp/x", "/tmp/y"]}})");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << key;
    EXPECT_NE(s.error_message().find("set by the coordinator"), std::string::npos)
        << s.error_message();
  }
  s = create_json(R"({"name": "t", "kind": "finetune", "dataset": "fmnist", )"
                  R"("config": {"classify": {"pretrained": "/root/.ssh"}}})");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("config.classify.pretrained: '/root/.ssh' is outside"),
            std::string::npos)
      << s.error_message();
  s = create_json(R"({"name": "t", "kind": "finetune", "dataset": "fmnist", "config": {}, )"
                  R"("hyperparameters": {"classify.pretrained": ["none", "/etc"]}})");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // A base config's own data and output paths are replaced in the assignment.
  s = create_json(R"({"name": "u", "kind": "pretrain", "dataset": "fmnist", )"
                  R"("config": {"data": {"path": "/etc", "source": "fashion-mnist"}, )"
                  R"("run": {"output_dir": "/tmp/elsewhere"}, "checkpoint": {"dir": "/tmp/c"}}})");
  EXPECT_TRUE(s.ok()) << s.error_message();
  pb::RegisterWorkerResponse w1;
  ASSERT_TRUE(Register("w1", &w1).ok());
  pb::HeartbeatResponse beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  // The config the worker gets keeps none of the base config's paths: the placement says where.
  auto config = Json::Parse(beat.assignments(0).config_json());
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->Find("data")->Find("path"), nullptr);
  EXPECT_EQ(config->Find("data")->Find("source"), nullptr);
  EXPECT_EQ(config->Find("run")->Find("output_dir"), nullptr);
  EXPECT_EQ(config->Find("checkpoint")->Find("dir"), nullptr);
  const pb::Placement& placement = beat.assignments(0).placement();
  EXPECT_EQ(placement.data_path(), dir_);
  EXPECT_EQ(placement.output_dir().rfind(dir_ + "/runs/", 0), 0u);
  EXPECT_EQ(placement.checkpoint_dir().rfind(dir_ + "/runs/", 0), 0u);
  // Weights inside: a data root, or an earlier experiment's checkpoints under the runs folder.
  s = create_json(R"({"name": "t", "kind": "finetune", "dataset": "fmnist", )"
                  R"("config": {"classify": {"num_classes": 10, "pretrained": ")" +
                  dir_ + R"(/runs/trial-1/pretrain/checkpoints"}}})");
  EXPECT_TRUE(s.ok()) << s.error_message();
  // A hyperparameter on classify.pretrained replaces the base config's value, so that value (a
  // shipped config's relative default here) is not what is checked: the hyperparameter is.
  s = create_json(R"({"name": "v", "kind": "finetune", "dataset": "fmnist", )"
                  R"("config": {"classify": {"num_classes": 10, "pretrained": "runs/x"}}, )"
                  R"("hyperparameters": {"classify.pretrained": ")" +
                  dir_ + R"(/runs/trial-1/pretrain/checkpoints"}})");
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = create_json(R"({"name": "w", "kind": "finetune", "dataset": "fmnist", )"
                  R"("config": {"classify": {"num_classes": 10, "pretrained": "runs/x"}}, )"
                  R"("hyperparameters": {"classify.pretrained": "/root/.ssh"}})");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("hyperparameters.classify.pretrained: '/root/.ssh'"),
            std::string::npos)
      << s.error_message();
}

TEST_F(ServiceTest, AStoredExperimentNamingAFileIsRefusedAtLoadAndTheCoordinatorStarts) {
  // What an older coordinator stored for a request whose config was a path: the path only.
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("", &created).ok());
  pb::CreateExperimentResponse kept;
  ASSERT_TRUE(Create("hyperparameters: {optim.epochs: 2}\n", &kept).ok());
  server_.reset();
  {
    auto store = Store::Open(dir_ + "/db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (Json experiment : (*store)->Experiments()) {
      if (experiment.Find("id")->as_int() != created.experiment_id()) continue;
      Json spec = *experiment.Find("spec");
      spec.as_object()["config"] = Json(dir_ + "/deleted.yaml");
      experiment.as_object()["spec"] = spec;
      Change change;
      change.PutExperiment(experiment);
      ASSERT_TRUE((*store)->Commit(std::move(change)).ok());
    }
  }
  Start(10000);
  Json trial = Trial(created.experiment_id());
  EXPECT_EQ(trial.Find("state")->as_string(), "canceled");
  pb::DescribeExperimentRequest describe;
  describe.set_experiment_id(created.experiment_id());
  pb::DescribeExperimentResponse described;
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::DescribeExperiment, describe, &described).ok());
  auto experiment = Json::Parse(described.experiment_json());
  ASSERT_TRUE(experiment.ok());
  EXPECT_NE(experiment->Find("refused")->as_string().find("deleted.yaml' names a file"),
            std::string::npos);
  // The other experiment runs on.
  pb::RegisterWorkerResponse w1;
  ASSERT_TRUE(Register("w1", &w1).ok());
  pb::HeartbeatResponse beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).trial_id(), kept.trial_ids(0));
  // Started again, it reads the refusal back from its store.
  Start(10000);
  EXPECT_EQ(Trial(created.experiment_id()).Find("state")->as_string(), "canceled");
}

TEST_F(ServiceTest, StaleAttemptsAreRefusedAndReRegisteredTrainersAdopted) {
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::RegisterWorkerResponse w1;
  ASSERT_TRUE(Register("w1", &w1).ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("max_restarts: 1\n", &created).ok());
  const int64_t trial = created.trial_ids(0);
  pb::HeartbeatResponse beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).attempt(), 1);
  EXPECT_FALSE(beat.assignments(0).resume());
  EXPECT_EQ(beat.assignments(0).device(), "cpu");
  EXPECT_EQ(beat.assignments(0).placement().data_path(), dir_);
  EXPECT_EQ(beat.assignments(0).placement().data_service(), "");
  EXPECT_EQ(beat.assignments(0).placement().output_dir(),
            dir_ + "/runs/trial-" + std::to_string(trial) + "/pretrain");
  EXPECT_EQ(beat.assignments(0).placement().checkpoint_dir(),
            dir_ + "/runs/trial-" + std::to_string(trial) + "/pretrain/checkpoints");
  EXPECT_EQ(beat.assignments(0).placement().pretrained(), "");

  // A report of an attempt this worker never held, or of the attempt from another worker:
  // PERMISSION_DENIED; from a worker without a session: ABORTED (register first).
  grpc::Status s = Exit("w1", trial, 0, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("does not hold"), std::string::npos) << s.error_message();
  EXPECT_EQ(Exit("w2", trial, 1, 0).error_code(), grpc::StatusCode::ABORTED);
  pb::RegisterWorkerResponse w2;
  ASSERT_TRUE(Register("w2", &w2).ok());
  EXPECT_EQ(Exit("w2", trial, 1, 0).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // The same identity registers again listing its trainer: adopted, nothing killed.
  pb::RegisterWorkerResponse again;
  ASSERT_TRUE(Register("w1", &again, {{trial, 1}}).ok());
  EXPECT_EQ(again.kill_size(), 0);
  EXPECT_NE(again.session_id(), w1.session_id());
  EXPECT_TRUE(Heartbeat("w1", w1.session_id()).reregister());  // the old session is gone
  beat = Heartbeat("w1", again.session_id(), {{trial, 1}}, 0);
  EXPECT_EQ(beat.kill_size(), 0);
  Json t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "running");
  EXPECT_EQ(t.Find("attempt")->as_int(), 1);

  // Registering again without it: the attempt failed (the worker restarted); the next one
  // resumes. Progress of the old attempt, which this session never held, is refused with
  // nothing changed.
  pb::RegisterWorkerResponse third;
  ASSERT_TRUE(Register("w1", &third).ok());
  t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "queued");
  EXPECT_EQ(t.Find("restarts")->as_int(), 1);
  pb::HeartbeatRequest foreign;
  foreign.set_worker_id("w1");
  foreign.set_session_id(third.session_id());
  foreign.set_free_slots(1);
  auto* p = foreign.add_progress();
  p->set_trial_id(trial);
  p->set_attempt(1);
  p->set_step(5);
  pb::HeartbeatResponse refused;
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::Heartbeat, foreign, &refused).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Trial(created.experiment_id()).Find("state")->as_string(), "queued");
  beat = Heartbeat("w1", third.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).attempt(), 2);
  EXPECT_TRUE(beat.assignments(0).resume());

  // A retryable exit with the budget spent (max_restarts 1): failed, with its cause.
  ASSERT_TRUE(Exit("w1", trial, 2, 4).ok());
  t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "failed");
  EXPECT_NE(t.Find("cause")->as_string().find("failed 2 times (max_restarts 1)"), std::string::npos)
      << t.Dump();
  EXPECT_NE(t.Find("cause")->as_string().find("error: boom"), std::string::npos);
  EXPECT_EQ(Exit("w1", trial, 2, 0).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServiceTest, PermanentFailuresAreNotRetriedAndPreemptionIsFree) {
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::RegisterWorkerResponse w1;
  ASSERT_TRUE(Register("w1", &w1).ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("hyperparameters:\n  model.mask_ratio: [0.5, 0.75]\n", &created).ok());
  auto beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  const int64_t first = beat.assignments(0).trial_id();
  ASSERT_TRUE(Exit("w1", first, 1, 3).ok());  // preempted: queued again, budget untouched
  Json t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "queued");
  EXPECT_EQ(t.Find("restarts")->as_int(), 0);
  beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).trial_id(), first);  // FIFO: its place in the queue
  ASSERT_TRUE(Exit("w1", first, 2, 2).ok());         // permanent
  t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "failed");
  EXPECT_NE(t.Find("cause")->as_string().find("permanent failure"), std::string::npos);
  beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_NE(beat.assignments(0).trial_id(), first);
}

TEST_F(ServiceTest, AnAssignmentWhoseAnswerWasLostIsQueuedAgainForFree) {
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::RegisterWorkerResponse w1;
  ASSERT_TRUE(Register("w1", &w1).ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("", &created).ok());
  ASSERT_EQ(Heartbeat("w1", w1.session_id()).assignments_size(), 1);  // this answer is "lost"
  const auto beat = Heartbeat("w1", w1.session_id());                 // holding nothing
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).attempt(), 2);
  Json t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("restarts")->as_int(), 0);
  pb::ListEventsRequest request;
  pb::ListEventsResponse events;
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::ListEvents, request, &events).ok());
  bool recorded = false;
  for (const auto& text : events.events_json()) {
    recorded |= text.find("the assignment never reached worker w1") != std::string::npos;
  }
  EXPECT_TRUE(recorded);
}

TEST_F(ServiceTest, ALostWorkersTrialsMoveAndItsReturnKillsTheStaleTrainer) {
  Start(400);
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::RegisterWorkerResponse w1, w2;
  ASSERT_TRUE(Register("w1", &w1).ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("", &created).ok());
  const int64_t trial = created.trial_ids(0);
  ASSERT_EQ(Heartbeat("w1", w1.session_id()).assignments_size(), 1);
  ASSERT_TRUE(Register("w2", &w2).ok());
  // w1 goes silent; w2 keeps heartbeating until the trial comes its way (simulated time).
  pb::HeartbeatResponse beat;
  for (int i = 0; i < 8 && beat.assignments_size() == 0; ++i) {
    clock_.Advance(100);
    server_->scheduler().Tick();
    beat = Heartbeat("w2", w2.session_id());
  }
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).trial_id(), trial);
  EXPECT_EQ(beat.assignments(0).attempt(), 2);
  EXPECT_TRUE(beat.assignments(0).resume());
  Json t = Trial(created.experiment_id());
  EXPECT_NE(t.Find("failures")->as_array().at(0).Find("cause")->as_string().find("worker w1 lost"),
            std::string::npos);
  // w1 comes back: told to register again, and to kill what it still runs.
  EXPECT_TRUE(Heartbeat("w1", w1.session_id(), {{trial, 1}}).reregister());
  pb::RegisterWorkerResponse back;
  ASSERT_TRUE(Register("w1", &back, {{trial, 1}}).ok());
  ASSERT_EQ(back.kill_size(), 1);
  EXPECT_EQ(back.kill(0).attempt(), 1);
}

TEST_F(ServiceTest, AWorkerBackBeforeItsTrialMovedKeepsIt) {
  Start(300);
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::RegisterWorkerResponse w1;
  ASSERT_TRUE(Register("w1", &w1).ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("", &created).ok());
  const int64_t trial = created.trial_ids(0);
  ASSERT_EQ(Heartbeat("w1", w1.session_id()).assignments_size(), 1);
  clock_.Advance(900);  // lost; nobody took the trial
  server_->scheduler().Tick();
  EXPECT_EQ(Trial(created.experiment_id()).Find("state")->as_string(), "queued");
  pb::RegisterWorkerResponse back;
  ASSERT_TRUE(Register("w1", &back, {{trial, 1}}).ok());
  EXPECT_EQ(back.kill_size(), 0);
  const auto beat = Heartbeat("w1", back.session_id(), {{trial, 1}}, 0);
  EXPECT_EQ(beat.kill_size(), 0);
  EXPECT_EQ(beat.assignments_size(), 0);
  Json t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "running");
  EXPECT_EQ(t.Find("attempt")->as_int(), 1);
  EXPECT_EQ(t.Find("restarts")->as_int(), 0);
}

TEST_F(ServiceTest, ARestartedCoordinatorAdoptsListedTrainersAndLosesTheRest) {
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::RegisterWorkerResponse w1, w2;
  ASSERT_TRUE(Register("w1", &w1).ok());
  ASSERT_TRUE(Register("w2", &w2).ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("hyperparameters:\n  model.mask_ratio: [0.5, 0.75]\n", &created).ok());
  ASSERT_EQ(Heartbeat("w1", w1.session_id()).assignments_size(), 1);
  ASSERT_EQ(Heartbeat("w2", w2.session_id()).assignments_size(), 1);
  const Json before = Trial(created.experiment_id(), 0);
  Start(600);  // the same state folder
  EXPECT_TRUE(Heartbeat("w1", w1.session_id()).reregister());
  pb::RegisterWorkerResponse back;
  const std::string holder = before.Find("worker")->as_string();
  ASSERT_TRUE(Register(holder, &back, {{before.Find("id")->as_int(), 1}}).ok());
  EXPECT_EQ(back.kill_size(), 0);
  // The other worker never comes back: after the timeout its trial is queued again.
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(100);
    server_->scheduler().Tick();
    Heartbeat(holder, back.session_id(), {{before.Find("id")->as_int(), 1}}, 0);
  }
  Json adopted = Trial(created.experiment_id(), 0), lost = Trial(created.experiment_id(), 1);
  EXPECT_EQ(adopted.Find("state")->as_string(), "running");
  EXPECT_EQ(adopted.Find("attempt")->as_int(), 1);
  EXPECT_EQ(lost.Find("state")->as_string(), "queued");
  EXPECT_NE(lost.Find("failures")
                ->as_array()
                .at(0)
                .Find("cause")
                ->as_string()
                .find("did not register again"),
            std::string::npos)
      << lost.Dump();
}

TEST_F(ServiceTest, APipelineProbesThePretrainingsFinalCheckpoint) {
  ASSERT_TRUE(RegisterDataset("fmnist", dir_).ok());
  pb::RegisterWorkerResponse w1;
  ASSERT_TRUE(Register("w1", &w1).ok());
  const std::string path = dir_ + "/pipeline.yaml";
  ASSERT_TRUE(
      WriteFileAtomic(path, "name: p\nkind: pipeline\ndataset: fmnist\nconfig: " MAESTRO_SOURCE_DIR
                            "/configs/fmnist_pretrain.yaml\nevaluations:\n"
                            "  - {kind: linprobe, config: " MAESTRO_SOURCE_DIR
                            "/configs/fmnist_linprobe.yaml}\n")
          .ok());
  auto tree = LoadExperimentInlined(path);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  pb::CreateExperimentRequest request;
  request.set_experiment_json(tree->Dump());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::CreateExperiment, request, &created).ok());
  auto beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).job(), "pretrain");
  const std::string result =
      Json(Json::Object{{"final_train_loss", 0.25}, {"checkpoint", "/ckpt/step-000000000010"}})
          .Dump();
  ASSERT_TRUE(Exit("w1", created.trial_ids(0), 1, 0, result).ok());
  beat = Heartbeat("w1", w1.session_id());
  ASSERT_EQ(beat.assignments_size(), 1);
  EXPECT_EQ(beat.assignments(0).job(), "linprobe");
  EXPECT_FALSE(beat.assignments(0).resume());
  EXPECT_EQ(beat.assignments(0).placement().pretrained(), "/ckpt/step-000000000010");
  EXPECT_NE(beat.assignments(0).placement().output_dir().find("/linprobe"), std::string::npos);
  ASSERT_TRUE(Exit("w1", created.trial_ids(0), 2, 0,
                   Json(Json::Object{{"final", Json(Json::Object{{"top1", 71.5}})}}).Dump())
                  .ok());
  Json t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "completed");
  EXPECT_EQ(t.Find("results")->Find("linprobe")->Find("final")->Find("top1")->as_double(), 71.5);
  EXPECT_EQ(t.Find("results")->Find("pretrain")->Find("final_train_loss")->as_double(), 0.25);
}

}  // namespace
}  // namespace maestro::coordinator

namespace maestro::coordinator {
namespace {

// Every RPC x every kind of caller: the code each gets, and no refusal changes any state.
TEST_F(ServiceTest, EveryRpcAnswersEveryCallerWithTheCodeItsRoleEarns) {
  using Call = std::function<grpc::Status(pb::Coordinator::Stub&, grpc::ClientContext*)>;
  enum Access { kRead, kWrite, kAdmin, kWorker };
  struct RpcCase {
    const char* name;
    Access access;
    Call call;
  };
  pb::CreateExperimentRequest create;
  create.set_experiment_json("{}");
  pb::DescribeExperimentRequest describe;
  describe.set_experiment_id(999);
  pb::CancelExperimentRequest cancel;
  cancel.set_experiment_id(999);
  pb::GetTrialLogsRequest logs;
  logs.set_trial_id(999);
  pb::ContinueExperimentRequest continue_experiment;
  continue_experiment.set_experiment_id(999);
  pb::ExtendExperimentRequest extend;
  extend.set_experiment_id(999);
  extend.set_trials(1);
  pb::GetTrialRequest get_trial;
  get_trial.set_trial_id(999);
  pb::GetMetricHistoryRequest history;
  history.set_trial_id(999);
  pb::RegisterDatasetRequest dataset;
  dataset.set_name("d");
  dataset.set_dataset_json("{}");
  pb::RegisterWorkerRequest register_worker;
  register_worker.set_worker_id("w1");
  register_worker.set_protocol_version(kWorkerProtocolVersion);
  register_worker.mutable_resources()->set_slots(1);
  pb::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id("w1");
  heartbeat.set_session_id("not-a-session");
  pb::ReportTrialExitRequest exit;
  exit.set_worker_id("w1");
  exit.set_session_id("not-a-session");
  exit.set_trial_id(999);
  pb::CreateTokenRequest create_token;
  create_token.set_role("nobody");  // INVALID_ARGUMENT for whoever may call it
  pb::RevokeTokenRequest revoke;
  revoke.set_id("0000000000000000");
#define MAESTRO_RPC(method, access, request)                                                \
  RpcCase {                                                                                 \
    #method, access, [request](pb::Coordinator::Stub& stub, grpc::ClientContext* context) { \
      pb::method##Response response;                                                        \
      return stub.method(context, request, &response);                                      \
    }                                                                                       \
  }
  const pb::ListExperimentsRequest list_experiments;
  const pb::ListEventsRequest list_events;
  const pb::ListWorkersRequest list_workers;
  const pb::ListDatasetsRequest list_datasets;
  const pb::ListTokensRequest list_tokens;
  const std::vector<RpcCase> rpcs = {
      MAESTRO_RPC(CreateExperiment, kWrite, create),
      MAESTRO_RPC(ListExperiments, kRead, list_experiments),
      MAESTRO_RPC(DescribeExperiment, kRead, describe),
      MAESTRO_RPC(CancelExperiment, kWrite, cancel),
      MAESTRO_RPC(GetTrialLogs, kRead, logs),
      MAESTRO_RPC(ContinueExperiment, kWrite, continue_experiment),
      MAESTRO_RPC(ExtendExperiment, kWrite, extend),
      MAESTRO_RPC(GetTrial, kRead, get_trial),
      MAESTRO_RPC(GetMetricHistory, kRead, history),
      MAESTRO_RPC(ListEvents, kRead, list_events),
      MAESTRO_RPC(ListWorkers, kRead, list_workers),
      MAESTRO_RPC(RegisterDataset, kWrite, dataset),
      MAESTRO_RPC(ListDatasets, kRead, list_datasets),
      MAESTRO_RPC(RegisterWorker, kWorker, register_worker),
      MAESTRO_RPC(Heartbeat, kWorker, heartbeat),
      MAESTRO_RPC(ReportTrialExit, kWorker, exit),
      MAESTRO_RPC(CreateToken, kAdmin, create_token),
      MAESTRO_RPC(ListTokens, kAdmin, list_tokens),
      MAESTRO_RPC(RevokeToken, kAdmin, revoke),
  };
#undef MAESTRO_RPC
  ASSERT_EQ(rpcs.size(), 19u);  // every rpc of coordinator.proto
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      pb::Coordinator::service_full_name());
  ASSERT_NE(service, nullptr);
  ASSERT_EQ(service->method_count(), 19);  // a new rpc needs its row above

  const std::string user = NewToken("user", "alice");
  const std::string viewer = NewToken("viewer", "bob");
  const std::string w1 = WorkerToken("w1");
  const std::string w2 = WorkerToken("w2");  // a valid worker, but not w1
  const std::string expired = NewToken("viewer", "expired", 1);
  const std::string revoked = NewToken("admin", "revoked");
  const std::string revoked_id = revoked.substr(5, 16);
  pb::RevokeTokenRequest revoke_it;
  revoke_it.set_id(revoked_id);
  pb::RevokeTokenResponse revoked_response;
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::RevokeToken, revoke_it, &revoked_response).ok());
  clock_.Advance(5);  // `expired` lived 1 ms

  // Channels that cannot even make the call: plaintext, and one trusting another cluster's CA.
  security::ClusterInit other;
  other.dir = dir_ + "/other-cluster";
  ASSERT_TRUE(security::InitCluster(other).ok());
  const std::string address = "127.0.0.1:" + std::to_string(server_->port());
  auto plaintext = pb::Coordinator::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::SslCredentialsOptions other_tls;
  other_tls.pem_root_certs = *ReadFile(other.dir + "/ca.crt");
  auto other_ca = pb::Coordinator::NewStub(
      grpc::CreateChannel(address, grpc::SslCredentials(other_tls)));

  struct Caller {
    std::string name, token;
    pb::Coordinator::Stub* stub;
    std::function<bool(Access)> allowed;  // null: refused before any role is known
    grpc::StatusCode refusal;
  };
  const auto role = [](std::set<Access> set) {
    return std::function<bool(Access)>([set](Access a) { return set.count(a) > 0; });
  };
  const std::vector<Caller> callers = {
      {"admin", admin_token_, stub_.get(), role({kRead, kWrite, kAdmin}),
       grpc::StatusCode::PERMISSION_DENIED},
      {"user", user, stub_.get(), role({kRead, kWrite}), grpc::StatusCode::PERMISSION_DENIED},
      {"viewer", viewer, stub_.get(), role({kRead}), grpc::StatusCode::PERMISSION_DENIED},
      {"worker w1", w1, stub_.get(), role({kWorker}), grpc::StatusCode::PERMISSION_DENIED},
      {"worker w2 naming w1", w2, stub_.get(), role({}), grpc::StatusCode::PERMISSION_DENIED},
      {"no credential", "", stub_.get(), nullptr, grpc::StatusCode::UNAUTHENTICATED},
      {"malformed token", "mst1_nonsense", stub_.get(), nullptr,
       grpc::StatusCode::UNAUTHENTICATED},
      {"forged token", "mst1_" + revoked_id + "_" + std::string(64, 'a'), stub_.get(), nullptr,
       grpc::StatusCode::UNAUTHENTICATED},
      {"expired token", expired, stub_.get(), nullptr, grpc::StatusCode::UNAUTHENTICATED},
      {"revoked token", revoked, stub_.get(), nullptr, grpc::StatusCode::UNAUTHENTICATED},
      {"plaintext client", admin_token_, plaintext.get(), nullptr,
       grpc::StatusCode::UNAVAILABLE},
      {"client of another CA", admin_token_, other_ca.get(), nullptr,
       grpc::StatusCode::UNAVAILABLE},
  };
  auto run = [&](const Caller& caller, const RpcCase& rpc) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    if (!caller.token.empty()) context.AddMetadata("authorization", "Bearer " + caller.token);
    return rpc.call(*caller.stub, &context);
  };
  auto events = [&] {
    pb::ListEventsRequest request;
    pb::ListEventsResponse response;
    EXPECT_TRUE(Rpc(&pb::Coordinator::Stub::ListEvents, request, &response).ok());
    return std::vector<std::string>(response.events_json().begin(), response.events_json().end());
  };
  // The refusals first: nothing they do shows in the event log.
  const auto before = events();
  int cells = 0;
  for (const Caller& caller : callers) {
    for (const RpcCase& rpc : rpcs) {
      if (caller.allowed && caller.allowed(rpc.access)) continue;
      const grpc::Status status = run(caller, rpc);
      EXPECT_EQ(status.error_code(), caller.refusal)
          << caller.name << " x " << rpc.name << ": " << status.error_message();
      ++cells;
    }
  }
  EXPECT_EQ(events(), before) << "a refused call changed state";
  // The allowed calls reach the handler: whatever it answers, it is not an auth refusal.
  for (const Caller& caller : callers) {
    for (const RpcCase& rpc : rpcs) {
      if (!caller.allowed || !caller.allowed(rpc.access)) continue;
      const grpc::Status status = run(caller, rpc);
      EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << caller.name << " x " << rpc.name << ": " << status.error_message();
      EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << caller.name << " x " << rpc.name << ": " << status.error_message();
      EXPECT_NE(status.error_code(), grpc::StatusCode::UNAVAILABLE)
          << caller.name << " x " << rpc.name << ": " << status.error_message();
      ++cells;
    }
  }
  EXPECT_EQ(cells, static_cast<int>(callers.size() * rpcs.size()));
}

// Worker ids slurm-* belong to the Slurm backend's attempts: nobody enrolls one, not even an
// admin (a standing worker under such a name could pose as an attempt's job).
TEST_F(ServiceTest, SlurmAttemptWorkerIdsCannotBeEnrolled) {
  pb::CreateTokenRequest request;
  request.set_role("worker");
  request.set_name("slurm-1-1");
  pb::CreateTokenResponse response;
  const grpc::Status refused = Rpc(&pb::Coordinator::Stub::CreateToken, request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("reserved for the Slurm backend"), std::string::npos)
      << refused.error_message();
  request.set_name("node-slurm-1");  // only the prefix is reserved
  EXPECT_TRUE(Rpc(&pb::Coordinator::Stub::CreateToken, request, &response).ok());
}

// Audit: a state change names the credential that made it.
TEST_F(ServiceTest, EveryStateChangeRecordsTheCredentialThatMadeIt) {
  const std::string alice = NewToken("user", "alice");
  const std::string mallory = NewToken("user", "mallory");
  ASSERT_TRUE(RegisterDataset("fmnist", "/data").ok());
  pb::CreateExperimentResponse created;
  ASSERT_TRUE(Create("", &created).ok());
  pb::RegisterDatasetRequest dataset;
  dataset.set_name("alices");
  dataset.set_dataset_json(R"({"path": "/a", "splits": {"train": {"content_hash": "x", "count": 1}}})");
  pb::RegisterDatasetResponse registered;
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::RegisterDataset, dataset, &registered, &alice).ok());
  // Another user may neither re-point alice's dataset nor cancel the admin's experiment.
  dataset.set_dataset_json(R"({"path": "/a/evil", "splits": {"train": {"content_hash": "y", "count": 1}}})");
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::RegisterDataset, dataset, &registered, &mallory).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  pb::CancelExperimentRequest cancel;
  cancel.set_experiment_id(created.experiment_id());
  pb::CancelExperimentResponse canceled;
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::CancelExperiment, cancel, &canceled, &mallory).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::CancelExperiment, cancel, &canceled).ok());
  // Nor continue it (the owner, or an admin, may).
  pb::ContinueExperimentRequest continue_request;
  continue_request.set_experiment_id(created.experiment_id());
  pb::ContinueExperimentResponse continued;
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::ContinueExperiment, continue_request, &continued, &mallory)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::ContinueExperiment, continue_request, &continued).ok());
  EXPECT_GE(continued.queued(), 1);
  // Nor extend it (refused for the owner check, before the search method is looked at).
  pb::ExtendExperimentRequest extend_request;
  extend_request.set_experiment_id(created.experiment_id());
  extend_request.set_trials(1);
  pb::ExtendExperimentResponse extended;
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::ExtendExperiment, extend_request, &extended, &mallory)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  pb::ListEventsRequest request;
  pb::ListEventsResponse response;
  ASSERT_TRUE(Rpc(&pb::Coordinator::Stub::ListEvents, request, &response).ok());
  std::map<std::string, std::string> by_kind;
  for (const auto& text : response.events_json()) {
    auto event = Json::Parse(text);
    ASSERT_TRUE(event.ok());
    const Json* by = event->Find("by");
    ASSERT_NE(by, nullptr) << text;
    by_kind[event->Find("kind")->as_string() + "/" + event->StringOr("dataset")] = by->as_string();
  }
  EXPECT_EQ(by_kind["token_created/"].rfind("admin:", 0), 0u) << by_kind["token_created/"];
  EXPECT_EQ(by_kind["dataset_registered/fmnist"].rfind("admin:", 0), 0u);
  EXPECT_EQ(by_kind["dataset_registered/alices"].rfind("alice:", 0), 0u)
      << by_kind["dataset_registered/alices"];
  EXPECT_EQ(by_kind["experiment_created/"].rfind("admin:", 0), 0u);
  EXPECT_EQ(by_kind["experiment_canceled/"].rfind("admin:", 0), 0u);
  EXPECT_EQ(by_kind["experiment_continued/"].rfind("admin:", 0), 0u);
}

// Without credentials the coordinator starts only when told to be insecure, and only on
// loopback; it then serves plaintext callers. A client without the CA speaks plaintext to
// loopback addresses only.
TEST_F(ServiceTest, NoCredentialsNeedInsecureOnLoopback) {
  server_.reset();
  CoordinatorOptions options;
  options.db_dir = dir_ + "/insecure-db";
  options.listen = "127.0.0.1:0";
  options.scheduler.runs_dir = dir_ + "/runs";
  auto refused = CoordinatorServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--credentials"), std::string::npos);
  options.insecure = true;
  options.listen = "0.0.0.0:0";
  refused = CoordinatorServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("loopback"), std::string::npos);
  options.listen = "127.0.0.1:0";
  auto insecure = CoordinatorServer::Start(options);
  ASSERT_TRUE(insecure.ok()) << insecure.status().ToString();
  auto client = ConnectCoordinator("127.0.0.1:" + std::to_string((*insecure)->port()));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE((*client)->ListExperiments().ok());
  auto remote = ConnectCoordinator("example.invalid:7071");
  ASSERT_FALSE(remote.ok());
  EXPECT_EQ(remote.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(remote.status().message().find("loopback"), std::string::npos)
      << remote.status().ToString();
}

// Sizes beyond the documented limits: RESOURCE_EXHAUSTED, nothing stored.
TEST_F(ServiceTest, OversizedRequestsAreRefusedAsResourceExhausted) {
  pb::CreateExperimentRequest create;
  create.set_experiment_json(std::string((1 << 20) + 1, ' '));
  pb::CreateExperimentResponse created;
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::CreateExperiment, create, &created).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  pb::RegisterDatasetRequest dataset;
  dataset.set_name(std::string(300, 'n'));
  dataset.set_dataset_json("{}");
  pb::RegisterDatasetResponse registered;
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::RegisterDataset, dataset, &registered).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  pb::RegisterWorkerResponse worker;
  ASSERT_TRUE(Register("w1", &worker).ok());
  pb::HeartbeatRequest beat;
  beat.set_worker_id("w1");
  beat.set_session_id(worker.session_id());
  auto* chunk = beat.add_logs();
  chunk->set_data(std::string((1 << 20) + 1, 'x'));
  pb::HeartbeatResponse answer;
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::Heartbeat, beat, &answer).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  pb::CreateExperimentRequest huge;
  huge.set_experiment_json(std::string(17 << 20, ' '));  // beyond the server's message limit
  EXPECT_EQ(Rpc(&pb::Coordinator::Stub::CreateExperiment, huge, &created).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace maestro::coordinator
