#include "maestro/coordinator/tokens.h"

namespace maestro::coordinator {

using security::Role;
using security::TokenRecord;

Result<std::unique_ptr<TokenRegistry>> TokenRegistry::Open(Store& store, const Clock& clock,
                                                           const TokenRecord* bootstrap) {
  std::unique_ptr<TokenRegistry> registry(new TokenRegistry(store, clock));
  for (const Json& json : store.Tokens()) {
    MAESTRO_ASSIGN_OR_RETURN(TokenRecord record, TokenRecord::FromJson(json));
    registry->tokens_[record.id] = record;
  }
  if (bootstrap != nullptr && !registry->tokens_.count(bootstrap->id)) {
    Change change;
    change.SetActor("cluster init");
    change.PutToken(bootstrap->ToJson());
    change.AddEvent(Json(Json::Object{{"kind", "token_created"},
                                      {"token", bootstrap->id},
                                      {"name", bootstrap->name},
                                      {"role", security::RoleName(bootstrap->role)},
                                      {"time_ms", clock.WallMs()}}));
    MAESTRO_RETURN_IF_ERROR(store.Commit(std::move(change)));
    registry->tokens_[bootstrap->id] = *bootstrap;
  }
  return registry;
}

Result<Caller> TokenRegistry::Authenticate(const std::string& token, int64_t now_ms) const {
  if (token.empty()) return UnauthenticatedError("missing: the call carries no bearer token");
  MAESTRO_ASSIGN_OR_RETURN(std::string id, security::BearerTokenId(token));
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = tokens_.find(id);
  if (it == tokens_.end() || !security::ConstantTimeEqual(it->second.sha256,
                                                          security::Sha256Hex(token))) {
    return UnauthenticatedError("unknown: no such token");
  }
  const TokenRecord& r = it->second;
  if (r.revoked_ms != 0) {
    return UnauthenticatedError("revoked: token " + r.id + " (" + r.name + ") was revoked");
  }
  if (r.expires_ms != 0 && r.expires_ms <= now_ms) {
    return UnauthenticatedError("expired: token " + r.id + " (" + r.name + ") expired");
  }
  return Caller{r.id, r.name, r.role, r.worker};
}

Result<std::pair<std::string, TokenRecord>> TokenRegistry::Create(Role role,
                                                                  const std::string& name,
                                                                  int64_t lifetime_ms,
                                                                  const Caller& by) {
  if (name.empty() || name.size() > 256 || name.find_first_of("/\n\r\t ") != std::string::npos) {
    return InvalidArgumentError("name: 1 to 256 bytes without '/' or spaces, not '" +
                                name.substr(0, 64) + "'");
  }
  TokenRecord record;
  record.name = name;
  record.role = role;
  record.worker = role == Role::kWorker ? name : "";
  record.created_ms = clock_.WallMs();
  record.expires_ms = lifetime_ms > 0 ? record.created_ms + lifetime_ms : 0;
  record.created_by = by.Actor();
  const std::string token = security::NewBearerToken(record);
  std::lock_guard<std::mutex> lock(mutex_);
  Change change;
  change.SetActor(by.Actor());
  std::vector<std::string> superseded;
  if (role == Role::kWorker) {
    for (const auto& [id, other] : tokens_) {
      if (other.role == Role::kWorker && other.worker == name && other.revoked_ms == 0) {
        TokenRecord revoked = other;
        revoked.revoked_ms = record.created_ms;
        change.PutToken(revoked.ToJson());
        change.AddEvent(Json(Json::Object{{"kind", "token_revoked"},
                                          {"token", id},
                                          {"name", other.name},
                                          {"cause", "worker enrolled again"},
                                          {"time_ms", record.created_ms}}));
        superseded.push_back(id);
      }
    }
  }
  change.PutToken(record.ToJson());
  change.AddEvent(Json(Json::Object{{"kind", "token_created"},
                                    {"token", record.id},
                                    {"name", name},
                                    {"role", security::RoleName(role)},
                                    {"time_ms", record.created_ms}}));
  MAESTRO_RETURN_IF_ERROR(store_.Commit(std::move(change)));
  for (const std::string& id : superseded) tokens_[id].revoked_ms = record.created_ms;
  tokens_[record.id] = record;
  return std::make_pair(token, record);
}

std::vector<TokenRecord> TokenRegistry::List() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<TokenRecord> out;
  for (const auto& [id, record] : tokens_) out.push_back(record);
  return out;
}

Status TokenRegistry::Revoke(const std::string& id, const Caller& by) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = tokens_.find(id);
  if (it == tokens_.end()) return NotFoundError("no token " + id.substr(0, 64));
  if (it->second.revoked_ms != 0) return OkStatus();
  TokenRecord revoked = it->second;
  revoked.revoked_ms = clock_.WallMs();
  Change change;
  change.SetActor(by.Actor());
  change.PutToken(revoked.ToJson());
  change.AddEvent(Json(Json::Object{{"kind", "token_revoked"},
                                    {"token", id},
                                    {"name", revoked.name},
                                    {"time_ms", revoked.revoked_ms}}));
  MAESTRO_RETURN_IF_ERROR(store_.Commit(std::move(change)));
  it->second = revoked;
  return OkStatus();
}

}  // namespace maestro::coordinator
