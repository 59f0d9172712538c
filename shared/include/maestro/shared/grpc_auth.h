// TLS and bearer tokens on gRPC channels and servers (maestro_proto users only: never include
// this from a translation unit that sees LibTorch's headers). The credentials themselves are
// made and checked by security.h.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "maestro/shared/status.h"

namespace maestro {

// How a client reaches a server. `ca_file` empty: plaintext (only servers started with
// --insecure on loopback accept it). Otherwise TLS with the server's certificate verified
// against `ca_file` alone (the cluster CA; the system's roots are not trusted), and every call
// carries `authorization: Bearer <token>`, the token read from `token_file` when the channel is
// made (or given as `token`).
struct ClientAuth {
  std::string ca_file;
  std::string token_file;
  std::string token;  // the token itself, for callers that hold it in memory (not a file)
};

// The environment's defaults: MAESTRO_CA (the cluster CA file) and `token_variable`'s file
// (MAESTRO_TOKEN_FILE for people and workers, MAESTRO_DATA_TOKEN_FILE for trainers).
ClientAuth ClientAuthFromEnvironment(const char* token_variable = "MAESTRO_TOKEN_FILE");

// Credentials for a channel to `address`. NOT_FOUND / INVALID_ARGUMENT when the CA or the
// token file cannot be read (a token file readable by others is refused); INVALID_ARGUMENT for
// plaintext (no CA) to an address other than loopback.
Result<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientAuth& auth, const std::string& address);

// A server's TLS credentials from its certificate and key files (no client certificates:
// callers prove who they are with tokens).
Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert_file, const std::string& key_file);

// A token file read again when it changes (a trainer's data token, renewed by its worker while
// the run goes on), attached to each call. Thread-safe.
class TokenFile {
 public:
  explicit TokenFile(std::string path = "") : path_(std::move(path)) {}
  Result<std::string> Current();
  // Adds `authorization: Bearer <token>` to `context` (nothing without a path).
  Status Attach(grpc::ClientContext& context);

 private:
  std::string path_;
  std::mutex mutex_;
  std::string token_;
  timespec seen_{};
  ino_t inode_ = 0;
};

// The servers' log of refused calls, bounded so that a flood of hostile calls cannot flood the
// log: at most 10 lines a second, the rest counted and their number written once the second
// is over. Thread-safe.
class RefusalLog {
 public:
  explicit RefusalLog(std::string program) : program_(std::move(program)) {}
  // "<program>: refused <rpc> from <peer> (<who>): <message>" on stderr.
  void Write(const grpc::ServerContext& context, const std::string& rpc, const std::string& who,
             const std::string& message);

 private:
  std::string program_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point window_{};
  int64_t lines_ = 0, suppressed_ = 0;
};

// The bearer token of a call ("" when it carries none).
std::string BearerToken(const grpc::ServerContext& context);

// For an address a channel could not reach: why, when TLS is the reason ("" otherwise).
std::string ExplainTlsFailure(const std::string& address, const ClientAuth& auth);

// Whether `address` (host:port) names a loopback host (127.0.0.0/8, ::1, localhost).
bool IsLoopbackAddress(const std::string& address);

}  // namespace maestro
