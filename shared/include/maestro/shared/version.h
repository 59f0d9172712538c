// What a maestro build is, for the coordinator/worker handshake and `maestro worker list`.
#pragma once

#include <cstdint>
#include <string>

namespace maestro {

// The coordinator <-> worker protocol (shared/proto/maestro/coordinator/v1): a worker of
// another version is refused at registration with both versions named.
inline constexpr int64_t kWorkerProtocolVersion = 2;

// "<project version>+<git commit>" of this build ("+unknown" outside a git checkout).
std::string MaestroBuild();

}  // namespace maestro
