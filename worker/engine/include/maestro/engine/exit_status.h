// The trainer's exit statuses, as the engine names them: the shared contract
// (maestro/shared/exit_status.h).
#pragma once

#include "maestro/shared/exit_status.h"

namespace maestro::engine {

using ::maestro::ExitStatus;
using ::maestro::kExitCompleted;
using ::maestro::kExitPermanentFailure;
using ::maestro::kExitPreempted;
using ::maestro::kExitRetryableFailure;

}  // namespace maestro::engine
