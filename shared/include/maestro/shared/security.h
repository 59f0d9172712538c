// A cluster's credentials, made and checked with OpenSSL: the cluster CA and the servers'
// certificates (`maestro cluster init`), bearer tokens for people, tools and workers, and the
// signed data tokens with which the data service admits a trainer without asking the
// coordinator. No gRPC here (grpc_auth.h joins these to channels and servers). Thread-safe.
//
// A cluster folder (`maestro cluster init --dir DIR`) holds:
//   ca.crt              the cluster CA: every client verifies its server against it
//   ca.key              its private key (0600); nothing running needs it, keep it offline
//   coordinator.crt/key the coordinator's server certificate and key (0600)
//   data.crt/key        the data service's server certificate and key (0600)
//   data-token.key      the key the coordinator signs trainers' data tokens with and the data
//                       service checks them with (0600)
//   admin.token         the first admin token (0600), printed once by `cluster init`
//   admin-token.json    that token's record (a hash, never the token), which the coordinator
//                       loads into its store at start
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::security {

inline constexpr const char* kCaCertFile = "ca.crt";
inline constexpr const char* kCaKeyFile = "ca.key";
inline constexpr const char* kCoordinatorCertFile = "coordinator.crt";
inline constexpr const char* kCoordinatorKeyFile = "coordinator.key";
inline constexpr const char* kDataCertFile = "data.crt";
inline constexpr const char* kDataKeyFile = "data.key";
inline constexpr const char* kDataTokenKeyFile = "data-token.key";
inline constexpr const char* kAdminTokenFile = "admin.token";
inline constexpr const char* kAdminTokenRecordFile = "admin-token.json";

inline constexpr int64_t kDefaultTokenLifetimeMs = int64_t{90} * 24 * 3600 * 1000;

// Roles, weakest first. A worker is not above a viewer: it may only do worker things.
enum class Role { kViewer, kUser, kAdmin, kWorker };
const char* RoleName(Role role);
// INVALID_ARGUMENT for a name other than viewer, user, admin, worker.
Result<Role> ParseRole(std::string_view name);

// A bearer token as the coordinator stores it: everything but the secret.
struct TokenRecord {
  std::string id;      // 16 hex digits, shown by `maestro token list`, used by `token revoke`
  std::string name;    // who holds it (a person, a tool; a worker's id for worker tokens)
  Role role = Role::kViewer;
  std::string worker;  // the worker id this token acts for (role worker only)
  std::string sha256;  // of the whole token text
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // 0: never
  int64_t revoked_ms = 0;  // 0: not revoked
  std::string created_by;  // the name of the credential that made it ("cluster init" first)

  Json ToJson() const;
  static Result<TokenRecord> FromJson(const Json& json);
};

// A new token: "mst1_<id>_<secret>", 256 random bits of secret; `record` gets its id and hash.
std::string NewBearerToken(TokenRecord& record);
// The id part of a token's text; UNAUTHENTICATED when it is not shaped like one of ours.
Result<std::string> BearerTokenId(std::string_view token);

// Data tokens: "mdt1.<claims hex>.<HMAC-SHA256 hex>", claims a JSON object.
struct DataClaims {
  std::string subject;  // "trial-<t>/attempt-<a>", or a name for tokens made by hand
  int64_t trial = 0, attempt = 0;
  int64_t expires_ms = 0;
};
std::string SignDataToken(const DataClaims& claims, std::string_view key);
// UNAUTHENTICATED with the reason first in the message ("malformed", "bad signature",
// "expired") when the token is not valid at `now_ms`.
Result<DataClaims> VerifyDataToken(std::string_view token, std::string_view key, int64_t now_ms);

// Cryptographic randomness (OpenSSL's DRBG), as lowercase hex.
std::string RandomHex(size_t bytes);
std::string Sha256Hex(std::string_view bytes);
bool ConstantTimeEqual(std::string_view a, std::string_view b);

// Makes a cluster folder (see above). `hosts`: names or IP addresses the servers are reached
// at besides loopback (localhost, 127.0.0.1, ::1 are always in the certificates). Returns the
// admin token (the only time it is shown). FAILED_PRECONDITION when DIR already holds a CA.
struct ClusterInit {
  std::string dir;
  std::vector<std::string> hosts;
  int64_t admin_lifetime_ms = kDefaultTokenLifetimeMs;  // 0: never expires
};
Result<std::string> InitCluster(const ClusterInit& init);

// Reads a secret (a token, a key) from a file, whitespace trimmed. NOT_FOUND when missing,
// INVALID_ARGUMENT when empty or when others than its owner may read it (a secret in a
// world-readable file is no longer one).
Result<std::string> ReadSecretFile(const std::string& path);
// WriteFileAtomic with mode 0600 from the file's creation on (never briefly readable by
// others). An existing file is replaced.
Status WriteSecretFile(const std::string& path, std::string_view content);

// "90d", "12h", "30m", "45s", "never" (0) as milliseconds; INVALID_ARGUMENT otherwise.
Result<int64_t> ParseDurationMs(std::string_view text);

// Why a TLS connection to `address` (host:port) with `ca_file` as the only trusted root fails,
// in a sentence for a person; "" when the server verifies, or when nothing accepts a connection
// there (TLS is then not the reason). Bounded by `timeout_ms`.
std::string DiagnoseTls(const std::string& address, const std::string& ca_file,
                        int64_t timeout_ms = 3000);

int64_t NowMs();  // the wall clock, for expiries

}  // namespace maestro::security
