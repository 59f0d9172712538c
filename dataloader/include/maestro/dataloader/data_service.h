// maestro-data's server: the records of RocksDB-sharded datasets over gRPC
// (shared/proto/maestro/data/v1/data_service.proto), each rank's stream in the sampler's order
// with bounded in-flight bytes, plus Prometheus /metrics. Databases are opened read-only at
// start; a client that disconnects costs nothing once its handler notices (at most 100 ms).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::dataloader {

struct DataServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port of the gRPC server (port 0: any free one)
  std::string metrics_listen;          // host:port of /metrics; empty: none
  // (name, root folder): each split subfolder holding a manifest.json is served.
  std::vector<std::pair<std::string, std::string>> datasets;
  int64_t default_in_flight_bytes = 8 << 20;  // when a stream asks for 0
  int64_t chunk_bytes = 1 << 20;              // records per message, by bytes (at least one)
  int64_t max_fetch_indices = 1024;
  // Streams served at once (each holds a server thread while it lasts), and the share one
  // client (a data token's subject; a peer address without authentication) may hold; beyond
  // either, Stream is RESOURCE_EXHAUSTED (a trainer waits and retries). 0: a quarter of
  // max_streams.
  int64_t max_streams = 256;
  int64_t max_streams_per_client = 0;
  // A stream whose client acknowledged nothing for this long while the service waited on it
  // ends (DEADLINE_EXCEEDED), freeing its thread.
  double stream_idle_timeout_s = 120;
  // The cluster folder (`maestro cluster init`): data.crt, data.key and data-token.key. Every
  // call must then carry a data token signed with that key (the coordinator hands one to each
  // trainer with its assignment): none, malformed, badly signed or expired is
  // UNAUTHENTICATED, counted in maestro_data_auth_failures_total{reason}. Empty: plaintext
  // without authentication, only with `insecure` on a loopback address.
  std::string credentials_dir;
  bool insecure = false;
};

// One served split, as listed at start.
struct ServedSplit {
  std::string dataset, split, name, content_hash, storage;
  int64_t count = 0;
};

// The running server. Thread-safe; destroying it shuts it down.
class DataServer {
 public:
  // Opens every dataset's splits and starts serving. NOT_FOUND for a folder without splits,
  // INVALID_ARGUMENT for a duplicate name, for no credentials without `insecure`, or for
  // `insecure` on an address other than loopback; UNAVAILABLE when an address cannot be bound.
  static Result<std::unique_ptr<DataServer>> Start(const DataServerOptions& options);
  ~DataServer();
  DataServer(const DataServer&) = delete;
  DataServer& operator=(const DataServer&) = delete;

  int port() const;          // the bound gRPC port
  int metrics_port() const;  // 0 without /metrics
  const std::vector<ServedSplit>& splits() const;
  // Stops accepting calls, ends open streams (CANCELLED) and returns when all handlers left.
  void Shutdown();

  class Impl;

 private:
  explicit DataServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace maestro::dataloader
