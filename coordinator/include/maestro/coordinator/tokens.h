// The coordinator's bearer tokens over its store: created (the secret returned once, only its
// SHA-256 kept), listed, revoked, and checked on every call. Records live in RocksDB
// (token/<id>, store.h) and in memory; a check reads memory only. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "maestro/coordinator/store.h"
#include "maestro/shared/clock.h"
#include "maestro/shared/security.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

// Who made a call.
struct Caller {
  std::string token_id, name;
  security::Role role = security::Role::kViewer;
  std::string worker;  // role worker: the worker id it acts for
  // "name:token id", what the event log records as "by".
  std::string Actor() const { return name + ":" + token_id; }
};

class TokenRegistry {
 public:
  // Loads every stored token. `bootstrap`: a record from `cluster init` (admin-token.json),
  // stored when its id is not known yet (a revoked one stays revoked).
  // `clock` (its WallMs) stamps creations and revocations; it outlives the registry.
  static Result<std::unique_ptr<TokenRegistry>> Open(Store& store, const Clock& clock,
                                                     const security::TokenRecord* bootstrap);

  // The caller a token proves, at `now_ms`. UNAUTHENTICATED with the reason first in the
  // message: "missing", "malformed", "unknown", "expired", "revoked".
  Result<Caller> Authenticate(const std::string& token, int64_t now_ms) const;

  // A new token (its text returned, never stored). `lifetime_ms` 0: never expires. A worker
  // token names its worker id; enrolling a worker id again revokes its earlier tokens, so a
  // worker id belongs to exactly one credential. INVALID_ARGUMENT for an empty or overlong
  // name.
  Result<std::pair<std::string, security::TokenRecord>> Create(security::Role role,
                                                               const std::string& name,
                                                               int64_t lifetime_ms,
                                                               const Caller& by);
  std::vector<security::TokenRecord> List() const;
  // NOT_FOUND for an unknown id; revoking twice is OK.
  Status Revoke(const std::string& id, const Caller& by);

 private:
  TokenRegistry(Store& store, const Clock& clock) : store_(store), clock_(clock) {}
  Store& store_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::map<std::string, security::TokenRecord> tokens_;  // by id
};

}  // namespace maestro::coordinator
