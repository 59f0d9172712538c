// The `maestro experiment` verbs available without a coordinator (experiment_commands.cpp).
#pragma once

namespace maestro::tools {

// maestro experiment preview FILE [--json]: the trials an experiment file would launch.
int ExperimentPreview(int argc, char** argv);

// With a coordinator (--coordinator HOST:PORT, default 127.0.0.1:7071):
// maestro experiment create FILE [--idempotency-key K] [--json]
int ExperimentCreate(int argc, char** argv);
// maestro experiment list [--json]
int ExperimentList(int argc, char** argv);
// maestro experiment describe ID [--json]
int ExperimentDescribe(int argc, char** argv);

}  // namespace maestro::tools
