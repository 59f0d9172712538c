// maestro-coordinator's gRPC server (shared/proto/maestro/coordinator/v1/coordinator.proto)
// over the RocksDB store. First part of issue 6: experiments are validated, expanded and
// stored; scheduling them on workers comes next. Thread-safe; destroying it shuts it down.
#pragma once

#include <memory>
#include <string>

#include "maestro/shared/status.h"

namespace maestro::coordinator {

class CoordinatorServer {
 public:
  // Opens the store in `db_dir` and listens on `listen` (host:port; port 0: any free one).
  // FAILED_PRECONDITION for a store of another schema, UNAVAILABLE when the store is locked
  // by another coordinator or the address cannot be bound.
  static Result<std::unique_ptr<CoordinatorServer>> Start(const std::string& db_dir,
                                                          const std::string& listen);
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  int port() const;
  void Shutdown();

  class Impl;

 private:
  explicit CoordinatorServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace maestro::coordinator
