// maestro-coordinator's gRPC server on 127.0.0.1 with a real RocksDB store, driven by a raw
// gRPC client playing the workers: protocol versions, bad requests, stale attempts, adoption
// on re-registration, restarts within max_restarts, permanent failures, lost workers, a
// coordinator restarted on its state, and a pipeline moving from pretraining to its probe.
#include "maestro/coordinator/service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/json.h"
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
    options.scheduler.heartbeat_interval_ms = 100;
    options.scheduler.worker_timeout_ms = worker_timeout_ms;
    options.scheduler.grace_period_ms = 1000;
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    stub_ = pb::Coordinator::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  }

  template <typename Request, typename Response, typename Call>
  grpc::Status Rpc(Call call, const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (stub_.get()->*call)(&context, request, response);
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
    return Rpc(&pb::Coordinator::Stub::RegisterWorker, request, response);
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

  std::string dir_;
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

  // A heartbeat of an unknown session is told to register again; an exit of an unknown trial
  // is NOT_FOUND.
  EXPECT_TRUE(Heartbeat("w9", "nope").reregister());
  EXPECT_EQ(Exit("w1", 99, 1, 0).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Register("w2", &registered).ok());  // still serving
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
  auto config = Json::Parse(beat.assignments(0).config_json());
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->Find("data")->Find("source")->as_string(), "shards");
  EXPECT_EQ(config->Find("data")->Find("path")->as_string(), dir_);
  EXPECT_EQ(config->Find("run")->Find("output_dir")->as_string(),
            dir_ + "/runs/trial-" + std::to_string(trial) + "/pretrain");

  // A report of another attempt, or of the attempt from a worker that does not hold it.
  grpc::Status s = Exit("w1", trial, 0, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("stale"), std::string::npos) << s.error_message();
  EXPECT_EQ(Exit("w2", trial, 1, 0).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

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
  // resumes, and the old attempt's progress is answered with a kill.
  pb::RegisterWorkerResponse third;
  ASSERT_TRUE(Register("w1", &third).ok());
  t = Trial(created.experiment_id());
  EXPECT_EQ(t.Find("state")->as_string(), "queued");
  EXPECT_EQ(t.Find("restarts")->as_int(), 1);
  beat = Heartbeat("w1", third.session_id(), {{trial, 1}});
  ASSERT_EQ(beat.kill_size(), 1);
  EXPECT_EQ(beat.kill(0).attempt(), 1);
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
  // w1 goes silent; w2 keeps heartbeating until the trial comes its way.
  pb::HeartbeatResponse beat;
  for (int i = 0; i < 40 && beat.assignments_size() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
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
  std::this_thread::sleep_for(std::chrono::milliseconds(900));  // lost; nobody took the trial
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
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
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
  auto config = Json::Parse(beat.assignments(0).config_json());
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->Find("classify")->Find("pretrained")->as_string(), "/ckpt/step-000000000010");
  EXPECT_NE(config->Find("run")->Find("output_dir")->as_string().find("/linprobe"),
            std::string::npos);
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
