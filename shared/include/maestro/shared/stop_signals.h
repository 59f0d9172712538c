// How the daemons (maestro-data, maestro-coordinator, maestro-worker) take SIGTERM and SIGINT:
// synchronously. BlockStopSignals() first, before any thread starts (threads inherit the mask,
// so no thread is interrupted), then one thread waits in AwaitStopSignal().
#pragma once

#include <signal.h>

namespace maestro {

// Blocks SIGTERM and SIGINT in the calling thread; returns that set for AwaitStopSignal.
sigset_t BlockStopSignals();
// Waits for one of `signals` (blocked) and returns its number.
int AwaitStopSignal(const sigset_t& signals);

}  // namespace maestro
