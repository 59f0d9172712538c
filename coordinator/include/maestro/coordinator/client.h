// A client of maestro-coordinator for the `maestro` CLI. Plain C++ types only (the CLI links
// LibTorch; gRPC and protobuf stay in this library's translation units). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

struct ExperimentCreated {
  int64_t id = 0;
  bool existed = false;
  std::vector<int64_t> trials;
  int64_t reused_trials = 0;
};

class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;
  // `experiment`: LoadExperimentInlined's tree. Errors carry the coordinator's status.
  virtual Result<ExperimentCreated> CreateExperiment(const Json& experiment,
                                                     const std::string& idempotency_key) = 0;
  virtual Result<std::vector<Json>> ListExperiments() = 0;
  // The experiment record and its trials.
  virtual Result<std::pair<Json, std::vector<Json>>> DescribeExperiment(int64_t id) = 0;
  // (queued trials canceled, running trials told to stop).
  virtual Result<std::pair<int64_t, int64_t>> CancelExperiment(int64_t id) = 0;
  // The number of failed and canceled trials queued again.
  virtual Result<int64_t> ContinueExperiment(int64_t id) = 0;
  // The trials added to a random search.
  virtual Result<std::vector<int64_t>> ExtendExperiment(int64_t id, int64_t trials) = 0;
  // A trial's record and {stage: trainer config}.
  virtual Result<std::pair<Json, Json>> GetTrial(int64_t trial) = 0;
  // Every progress record of `experiment`'s trials (or of `trial` when experiment is 0), read
  // page by page.
  virtual Result<std::vector<Json>> MetricHistory(int64_t experiment, int64_t trial) = 0;
  // Bytes of a trial's log from `offset`: (data, next offset, trial state).
  struct LogSlice {
    std::string data;
    int64_t next_offset = 0;
    std::string state;
  };
  virtual Result<LogSlice> TrialLogs(int64_t trial, int64_t offset) = 0;
  virtual Result<std::vector<Json>> ListWorkers() = 0;
  // Events with seq >= from_seq; experiment 0: all.
  virtual Result<std::vector<Json>> ListEvents(int64_t from_seq, int64_t experiment) = 0;
  virtual Status RegisterDataset(const std::string& name, const Json& dataset) = 0;
  virtual Result<std::vector<Json>> ListDatasets() = 0;
  // (the token, shown once; its record). lifetime_ms 0: 90 days, -1: never expires.
  virtual Result<std::pair<std::string, Json>> CreateToken(const std::string& role,
                                                           const std::string& name,
                                                           int64_t lifetime_ms) = 0;
  virtual Result<std::vector<Json>> ListTokens() = 0;
  virtual Status RevokeToken(const std::string& id) = 0;
};

// How the CLI reaches the coordinator: TLS verified against `ca_file` and a bearer token from
// `token_file` (grpc_auth.h's ClientAuth; empty: the environment's MAESTRO_CA and
// MAESTRO_TOKEN_FILE).
struct CoordinatorAuth {
  std::string ca_file, token_file;
};

// UNAVAILABLE when `address` cannot be reached within `timeout_ms` (saying why when TLS is the
// reason); NOT_FOUND / INVALID_ARGUMENT for an unreadable CA or token file.
Result<std::unique_ptr<CoordinatorClient>> ConnectCoordinator(const std::string& address,
                                                              const CoordinatorAuth& auth = {},
                                                              int64_t timeout_ms = 10000);

}  // namespace maestro::coordinator
