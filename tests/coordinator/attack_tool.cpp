// A raw gRPC client of the coordinator for the security test (tests/python/security_test.py):
// replays one hostile call with the credentials it is given and prints the answer's code name
// and message on one line. Not a maestro tool: it exists to be refused.
//
//   attack_tool --address A --ca FILE --token-file FILE ATTACK [flags]
//   ATTACK: exit (ReportTrialExit), register (RegisterWorker), log (Heartbeat with a log chunk),
//   create (CreateExperiment with --experiment-json as sent, a config path for one)
//   --plaintext: no TLS, whatever the address (a client guard maestro's own tools keep).
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/grpc_auth.h"
#include "maestro/shared/grpc_status.h"
#include "maestro/shared/status.h"
#include "maestro/shared/version.h"

namespace pb = maestro::coordinator::v1;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: attack_tool exit|register|log|create --address A --ca F --token-file F "
                 "...\n";
    return 2;
  }
  const std::string attack = argv[1];
  std::string address, ca, token_file, worker = "w1", session, result, checkpoint, experiment;
  bool plaintext = false;
  int64_t trial = 1, attempt = 1;
  maestro::FlagParser flags("attack_tool", "Replays one hostile call; prints the answer's code.");
  flags.Add("address", &address, "the coordinator");
  flags.Add("ca", &ca, "the cluster CA");
  flags.Add("token-file", &token_file, "the attacker's own token");
  flags.Add("worker", &worker, "the worker id the call names");
  flags.Add("session", &session, "the session id it carries");
  flags.Add("trial", &trial, "trial");
  flags.Add("attempt", &attempt, "attempt");
  flags.Add("checkpoint", &checkpoint, "exit: the checkpoint the forged result names");
  flags.Add("experiment-json", &experiment, "create: the experiment as sent");
  flags.Add("plaintext", &plaintext, "speak plaintext (no TLS) to any address");
  maestro::ParseFlagsOrExit(flags, argc - 1, argv + 1);
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  grpc::ClientContext context;
  if (plaintext) {  // the token, if any, in the clear: what a careless client would send
    channel_credentials = grpc::InsecureChannelCredentials();
    if (!token_file.empty()) {
      auto token = maestro::ReadFile(token_file);
      if (token.ok()) {
        context.AddMetadata("authorization",
                            "Bearer " + token->substr(0, token->find_last_not_of("\n") + 1));
      }
    }
  } else {
    auto credentials = maestro::MakeChannelCredentials({ca, token_file, ""}, address);
    if (!credentials.ok()) {
      std::cerr << credentials.status().ToString() << "\n";
      return 2;
    }
    channel_credentials = *credentials;
  }
  auto stub = pb::Coordinator::NewStub(grpc::CreateChannel(address, channel_credentials));
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status;
  if (attack == "exit") {
    pb::ReportTrialExitRequest request;
    request.set_worker_id(worker);
    request.set_session_id(session);
    request.set_trial_id(trial);
    request.set_attempt(attempt);
    request.set_exit_code(0);
    request.set_result_json(R"({"job": "pretrain", "final_train_loss": 0.001, "checkpoint": ")" +
                            checkpoint + R"("})");
    pb::ReportTrialExitResponse response;
    status = stub->ReportTrialExit(&context, request, &response);
  } else if (attack == "register") {
    pb::RegisterWorkerRequest request;
    request.set_worker_id(worker);
    request.set_protocol_version(maestro::kWorkerProtocolVersion);
    request.mutable_resources()->set_slots(1);
    pb::RegisterWorkerResponse response;
    status = stub->RegisterWorker(&context, request, &response);
  } else if (attack == "log") {
    pb::HeartbeatRequest request;
    request.set_worker_id(worker);
    request.set_session_id(session);
    auto* chunk = request.add_logs();
    chunk->set_trial_id(trial);
    chunk->set_attempt(attempt);
    chunk->set_data("=== forged log line ===\n");
    pb::HeartbeatResponse response;
    status = stub->Heartbeat(&context, request, &response);
  } else if (attack == "create") {
    pb::CreateExperimentRequest request;
    request.set_experiment_json(experiment);
    pb::CreateExperimentResponse response;
    status = stub->CreateExperiment(&context, request, &response);
  } else {
    std::cerr << "unknown attack " << attack << "\n";
    return 2;
  }
  std::cout << maestro::GrpcCodeName(status.error_code()) << " " << status.error_message() << std::endl;
  return 0;
}
