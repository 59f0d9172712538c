// The credential verbs: cluster init, cluster data-token, token create|list|revoke, worker
// enroll. A token is shown once, when it is made: printed, or written to --out (mode 0600).
#include <cstdio>
#include <ctime>
#include <iostream>

#include "command_util.h"
#include "experiment_commands.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/security.h"

namespace maestro::tools {
namespace {

// A new token: written to `out` (0600) when given, else printed alone on stdout.
void DeliverToken(const std::string& token, const std::string& out, const std::string& what) {
  if (out.empty()) {
    std::cerr << what << "; the token follows, shown this once (store it in a file of mode 0600 "
              << "and pass --token-file FILE):\n";
    std::cout << token << std::endl;
    return;
  }
  if (Status s = security::WriteSecretFile(out, token + "\n"); !s.ok()) throw Error(s);
  std::cout << what << "; the token is in " << out << " (mode 0600), nowhere else\n";
}

std::string Date(int64_t ms) {
  if (ms == 0) return "never";
  const time_t seconds = static_cast<time_t>(ms / 1000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M", &utc);
  return text;
}

int64_t LifetimeFlag(const std::string& text) {
  auto ms = security::ParseDurationMs(text);
  if (!ms.ok()) throw Error(ms.status().WithContext("--expires"));
  return *ms == 0 ? -1 : *ms;  // -1 asks the coordinator for a token that never expires
}

}  // namespace

int ClusterInit(int argc, char** argv) {
  security::ClusterInit init;
  std::string admin_expires = "90d";
  FlagParser flags("maestro cluster init",
                   "Makes a cluster's credentials in --dir: a cluster CA (ca.crt; its key ca.key\n"
                   "is needed by nothing that runs: keep it offline), TLS certificates for the\n"
                   "coordinator and the data service (valid for loopback and every --host),\n"
                   "the key that signs trainers' data tokens, and the first admin token,\n"
                   "printed here once and kept in admin.token (mode 0600). Start\n"
                   "maestro-coordinator and maestro-data with --credentials DIR; give clients\n"
                   "ca.crt (--ca or MAESTRO_CA) and a token file (--token-file or\n"
                   "MAESTRO_TOKEN_FILE). Refuses a folder that already holds a CA.");
  flags.Add("dir", &init.dir, "the cluster folder to create (mode 0700)");
  flags.Add("host", &init.hosts,
            "a host name or IP address the coordinator and data service are reached at");
  flags.Add("admin-expires", &admin_expires, "lifetime of the admin token (90d, 12h, never)");
  ParseVerbFlags(flags, argc, argv, false);
  auto lifetime = security::ParseDurationMs(admin_expires);
  if (!lifetime.ok()) throw Error(lifetime.status().WithContext("--admin-expires"));
  init.admin_lifetime_ms = *lifetime;
  auto token = security::InitCluster(init);
  if (!token.ok()) throw Error(token.status());
  std::cerr << "cluster credentials in " << init.dir << ": ca.crt, coordinator.crt/key, "
            << "data.crt/key, data-token.key, admin.token (private files are mode 0600)\n"
            << "the admin token follows, shown this once (it is also in " << init.dir
            << "/admin.token):\n";
  std::cout << *token << std::endl;
  return 0;
}

int ClusterDataToken(int argc, char** argv) {
  std::string dir, name, expires = "1h", out;
  FlagParser flags("maestro cluster data-token",
                   "A data token for reading from maestro-data without the coordinator (a\n"
                   "trainer run by hand, `maestro-data stream`), signed with the cluster's\n"
                   "data-token.key: whoever can read --dir can make one. Trainers started by\n"
                   "workers get theirs with each assignment.");
  flags.Add("dir", &dir, "the cluster folder (`maestro cluster init`)");
  flags.Add("name", &name, "who uses it (the data service logs it)");
  flags.Add("expires", &expires, "lifetime (1h, 30m, 7d)");
  flags.Add("out", &out, "file to write it to (mode 0600); the token is never printed");
  ParseVerbFlags(flags, argc, argv, false);
  if (dir.empty() || name.empty() || out.empty()) {
    throw Error(InvalidArgumentError("--dir, --name and --out are required"));
  }
  auto lifetime = security::ParseDurationMs(expires);
  if (!lifetime.ok() || *lifetime == 0) {
    throw Error(InvalidArgumentError("--expires: a finite duration like 1h, not '" + expires + "'"));
  }
  auto key = security::ReadSecretFile(dir + "/" + security::kDataTokenKeyFile);
  if (!key.ok()) throw Error(key.status());
  security::DataClaims claims;
  claims.subject = "manual:" + name;
  claims.expires_ms = security::NowMs() + *lifetime;
  const std::string token = security::SignDataToken(claims, *key);
  if (Status s = security::WriteSecretFile(out, token + "\n"); !s.ok()) throw Error(s);
  std::cout << "data token for " << name << " in " << out << " (mode 0600), valid until "
            << Date(claims.expires_ms) << " UTC; give it as MAESTRO_DATA_TOKEN_FILE=" << out
            << "\n";
  return 0;
}

int TokenCreate(int argc, char** argv) {
  std::string address = "127.0.0.1:7071", role, name, expires = "90d", out;
  FlagParser flags("maestro token create",
                   "A bearer token for a person or a tool (admin only): admin (everything,\n"
                   "tokens and worker enrollment included), user (submit, cancel, register\n"
                   "datasets, read) or viewer (read). The coordinator keeps only its hash: the\n"
                   "token is shown once, here.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("role", &role, "admin, user or viewer");
  flags.Add("name", &name, "who holds it (default: the role)");
  flags.Add("expires", &expires, "lifetime (90d, 12h, 30m, never)");
  flags.Add("out", &out, "write it to this file (mode 0600) instead of printing it");
  ParseVerbFlags(flags, argc, argv, false);
  if (role != "admin" && role != "user" && role != "viewer") {
    throw Error(InvalidArgumentError("--role: admin, user or viewer, not '" + role +
                                     "' (a worker's token comes from `maestro worker enroll`)"));
  }
  const int64_t lifetime = LifetimeFlag(expires);
  auto created = Connect(address)->CreateToken(role, name.empty() ? role : name, lifetime);
  if (!created.ok()) throw Error(created.status());
  const Json& record = created->second;
  DeliverToken(created->first, out,
               "token " + record.Find("id")->as_string() + " (" + role + ", " +
                   record.Find("name")->as_string() + ", expires " +
                   Date(record.Find("expires_ms")->as_int()) + " UTC)");
  return 0;
}

int TokenList(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  bool json = false;
  FlagParser flags("maestro token list",
                   "Every token the coordinator knows (admin only): id, name, role, worker,\n"
                   "created, expires, revoked. Never the tokens themselves.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("json", &json, "print JSON (one object per line)");
  ParseVerbFlags(flags, argc, argv, false);
  auto tokens = Connect(address)->ListTokens();
  if (!tokens.ok()) throw Error(tokens.status());
  if (json) {
    for (const Json& t : *tokens) std::cout << t.Dump() << "\n";
    return 0;
  }
  std::printf("%-16s  %-20s  %-7s  %-16s  %-16s  %-16s  %s\n", "id", "name", "role", "created",
              "expires", "revoked", "by");
  for (const Json& t : *tokens) {
    const int64_t revoked = t.Find("revoked_ms")->as_int();
    std::printf("%-16s  %-20s  %-7s  %-16s  %-16s  %-16s  %s\n",
                t.Find("id")->as_string().c_str(), t.Find("name")->as_string().c_str(),
                t.Find("role")->as_string().c_str(), Date(t.Find("created_ms")->as_int()).c_str(),
                Date(t.Find("expires_ms")->as_int()).c_str(),
                revoked == 0 ? "-" : Date(revoked).c_str(),
                t.Find("created_by")->as_string().c_str());
  }
  return 0;
}

int TokenRevoke(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  FlagParser flags("maestro token revoke ID",
                   "Revokes a token (admin only): every call with it is refused from the next\n"
                   "one on. IDs come from `maestro token list`.");
  AddCoordinatorFlags(flags, &address);
  const std::string id = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !id.empty());
  if (id.empty()) throw Error(InvalidArgumentError("a token ID is required"));
  if (Status s = Connect(address)->RevokeToken(id); !s.ok()) throw Error(s);
  std::cout << "token " << id << " revoked\n";
  return 0;
}

int WorkerEnroll(int argc, char** argv) {
  std::string address = "127.0.0.1:7071", expires = "never", out;
  FlagParser flags("maestro worker enroll NAME",
                   "A worker's own credential (admin only): a token that may register,\n"
                   "heartbeat, report exits and ship logs as worker NAME and nothing else, so\n"
                   "a worker id belongs to exactly one credential (enrolling NAME again revokes\n"
                   "the earlier one). Start the worker with --id NAME --token-file FILE.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("expires", &expires, "lifetime (never, 90d, 12h)");
  flags.Add("out", &out, "write the token to this file (mode 0600) instead of printing it");
  const std::string name = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !name.empty());
  if (name.empty()) throw Error(InvalidArgumentError("a worker NAME (its --id) is required"));
  auto created = Connect(address)->CreateToken("worker", name, LifetimeFlag(expires));
  if (!created.ok()) throw Error(created.status());
  DeliverToken(created->first, out,
               "worker " + name + " enrolled (token " +
                   created->second.Find("id")->as_string() + ")");
  return 0;
}

}  // namespace maestro::tools
