// maestro-coordinator's gRPC server (shared/proto/maestro/coordinator/v1/coordinator.proto)
// over the Scheduler (scheduler.h) and its RocksDB store, with Prometheus /metrics: trials by
// state, queue wait, restarts by cause, workers alive, slots in use, and each running trial's
// step, loss, learning rate and images/s (labels experiment and trial; a finished trial's
// series are removed), and calls refused for their credential
// (maestro_coordinator_auth_failures_total{reason}). Thread-safe; destroying it shuts it down.
#pragma once

#include <memory>
#include <string>

#include "maestro/coordinator/scheduler.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

struct CoordinatorOptions {
  std::string db_dir;
  std::string listen = "127.0.0.1:7071";  // host:port; port 0: any free one
  std::string metrics_listen;             // host:port of /metrics; empty: none
  SchedulerOptions scheduler;
  // The cluster folder (`maestro cluster init`): coordinator.crt/key (TLS), ca.crt (to verify
  // data services), data-token.key (trainers' data tokens), admin-token.json (the first admin
  // token, stored at the first start). Every call must then carry a valid token with a role
  // allowed to make it (coordinator.proto). Empty: plaintext without authentication, only
  // with `insecure` on a loopback address.
  std::string credentials_dir;
  bool insecure = false;
  int64_t data_token_lifetime_ms = 600000;  // renewed after a third of it, with heartbeats
};

class CoordinatorServer {
 public:
  // Opens the store and listens. FAILED_PRECONDITION for a store of another schema,
  // UNAVAILABLE when the store is locked by another coordinator or an address cannot be bound,
  // INVALID_ARGUMENT without credentials (and not `insecure` on loopback).
  static Result<std::unique_ptr<CoordinatorServer>> Start(const CoordinatorOptions& options);
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  int port() const;
  int metrics_port() const;  // 0 without /metrics
  Scheduler& scheduler();
  void Shutdown();

  class Impl;

 private:
  explicit CoordinatorServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace maestro::coordinator
