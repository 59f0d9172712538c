// How the daemons (maestro-data, maestro-coordinator, maestro-worker) take SIGTERM and SIGINT:
// synchronously. BlockStopSignals() first, before any thread starts (threads inherit the mask,
// so no thread is interrupted), then one thread waits in AwaitStopSignal().
#pragma once

#include <signal.h>

#include <initializer_list>

namespace maestro {

// Blocks SIGTERM and SIGINT (and `extra`, say SIGUSR1 and SIGUSR2 for a daemon that Slurm
// signals) in the calling thread; returns that set for AwaitStopSignal.
sigset_t BlockStopSignals(std::initializer_list<int> extra = {});
// Waits for one of `signals` (blocked) and returns its number.
int AwaitStopSignal(const sigset_t& signals);

}  // namespace maestro
