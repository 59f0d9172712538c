// The data service's client: a RecordStore (records.h) whose records come from a maestro-data
// server, so the loader reads from the service exactly as from local shards. Plain C++ types
// only, so torch code can use it without seeing gRPC or protobuf headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "maestro/dataloader/records.h"
#include "maestro/shared/status.h"

namespace maestro::dataloader {

struct DataClientOptions {
  int64_t max_in_flight_bytes = 0;  // per stream; 0: the server's default
  int64_t connect_timeout_ms = 10000;
  // TLS and the data token. Empty: the environment's MAESTRO_CA and MAESTRO_DATA_TOKEN_FILE
  // (what a worker gives its trainers). No CA at all: plaintext (a server run --insecure).
  std::string ca_file, token_file;
  std::string token;  // the token itself instead of a file (the coordinator's own)
};

// Connects to `address` (host:port) and describes `dataset`/`split`. UNAVAILABLE when the
// server cannot be reached in time, NOT_FOUND for a dataset or split it does not serve.
// Read() costs a round trip per record (Fetch); OpenStream() streams with flow control.
Result<std::unique_ptr<RecordStore>> ConnectDataService(const std::string& address,
                                                        const std::string& dataset,
                                                        const std::string& split,
                                                        const DataClientOptions& options = {});

// What `address` serves, as (dataset, split, name, content hash, count) lines.
Result<std::vector<std::string>> ListServedSplits(const std::string& address,
                                                  const DataClientOptions& options = {});

}  // namespace maestro::dataloader
