// The `maestro experiment` verbs available without a coordinator (experiment_commands.cpp).
#pragma once

namespace maestro::tools {

// maestro experiment preview FILE [--json]: the trials an experiment file would launch.
int ExperimentPreview(int argc, char** argv);

}  // namespace maestro::tools
