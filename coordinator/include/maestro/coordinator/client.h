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
};

// UNAVAILABLE when `address` cannot be reached within `timeout_ms`.
Result<std::unique_ptr<CoordinatorClient>> ConnectCoordinator(const std::string& address,
                                                              int64_t timeout_ms = 10000);

}  // namespace maestro::coordinator
