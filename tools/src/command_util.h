// Helpers of the `maestro` verbs that talk to the coordinator (experiment_commands.cpp,
// cluster_commands.cpp): positional arguments, flag parsing after the verb, table cells.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "maestro/coordinator/client.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::tools {

// A value as a table shows it: numbers in their shortest form (0.9, not 0.90000000000000002),
// strings without quotes, null as "-".
inline std::string Cell(const Json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.as_string();
  if (value.is_number() && !value.is_int()) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.6g", value.as_double());
    return text;
  }
  return value.Dump();
}

// The verb's positional argument (argv[3]) when present, else "" (flags start at argv[3]).
inline std::string Positional(int argc, char** argv) {
  return argc >= 4 && std::string(argv[3]).rfind("--", 0) != 0 ? argv[3] : "";
}

// Parses the flags after the verb (and after its positional argument, when there is one).
inline void ParseVerbFlags(FlagParser& flags, int argc, char** argv, bool has_positional) {
  if (has_positional) {
    ParseFlagsOrExit(flags, argc - 3, argv + 3);
  } else {
    ParseFlagsOrExit(flags, argc - 2, argv + 2);
  }
}

// A positive integer id; INVALID_ARGUMENT naming `what` otherwise.
inline int64_t ParseId(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const long long id = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || id <= 0) {
    throw Error(InvalidArgumentError("a " + what + " ID (a positive integer) is required, not '" +
                                     text + "'"));
  }
  return id;
}

inline constexpr const char* kCoordinatorHelp = "the coordinator, host:port";

// The credentials of this process's calls to the coordinator (one CLI invocation, one caller).
inline coordinator::CoordinatorAuth& CoordinatorCredentials() {
  static coordinator::CoordinatorAuth auth;
  return auth;
}

// --coordinator, --ca and --token-file, for every verb that talks to the coordinator.
inline void AddCoordinatorFlags(FlagParser& flags, std::string* address) {
  flags.Add("coordinator", address, kCoordinatorHelp);
  flags.Add("ca", &CoordinatorCredentials().ca_file,
            "the cluster CA certificate the coordinator's is checked against (default: "
            "$MAESTRO_CA)");
  flags.Add("token-file", &CoordinatorCredentials().token_file,
            "file holding your token (mode 0600; default: $MAESTRO_TOKEN_FILE); a token is "
            "never given on the command line");
}

inline std::unique_ptr<coordinator::CoordinatorClient> Connect(const std::string& address) {
  auto client = coordinator::ConnectCoordinator(address, CoordinatorCredentials());
  if (!client.ok()) throw Error(client.status());
  return std::move(*client);
}

}  // namespace maestro::tools
