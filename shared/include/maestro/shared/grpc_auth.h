// TLS and bearer tokens on gRPC channels and servers (maestro_proto users only: never include
// this from a translation unit that sees LibTorch's headers). The credentials themselves are
// made and checked by security.h.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "maestro/shared/status.h"

namespace maestro {

// How a client reaches a server. `ca_file` empty: plaintext (only servers started with
// --insecure on loopback accept it). Otherwise TLS with the server's certificate verified
// against `ca_file` alone (the cluster CA; the system's roots are not trusted), and every call
// carries `authorization: Bearer <token>`, the token read from `token_file` (read again when
// the file changes, so a rotated token is used from the next call on).
struct ClientAuth {
  std::string ca_file;
  std::string token_file;
  std::string token;  // the token itself, for callers that hold it in memory (not a file)
};

// The environment's defaults: MAESTRO_CA (the cluster CA file) and `token_variable`'s file
// (MAESTRO_TOKEN_FILE for people and workers, MAESTRO_DATA_TOKEN_FILE for trainers).
ClientAuth ClientAuthFromEnvironment(const char* token_variable = "MAESTRO_TOKEN_FILE");

// NOT_FOUND / INVALID_ARGUMENT when the CA or the token file cannot be read (a token file
// readable by others is refused).
Result<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const ClientAuth& auth);

// A server's TLS credentials from its certificate and key files (no client certificates:
// callers prove who they are with tokens).
Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert_file, const std::string& key_file);

// The bearer token of a call ("" when it carries none).
std::string BearerToken(const grpc::ServerContext& context);

// For an address a channel could not reach: why, when TLS is the reason ("" otherwise).
std::string ExplainTlsFailure(const std::string& address, const ClientAuth& auth);

// Whether `address` (host:port) names a loopback host (127.0.0.0/8, ::1, localhost).
bool IsLoopbackAddress(const std::string& address);

}  // namespace maestro
