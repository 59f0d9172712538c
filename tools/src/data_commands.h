// The `maestro data` verbs (data_commands.cpp). Each parses argv from the verb on and returns
// the process exit status; errors are thrown as maestro::Error.
#pragma once

namespace maestro::tools {

// maestro data ingest --format idx --src DIR --out ROOT [--split train|test] [--shards K]
int DataIngest(int argc, char** argv);

}  // namespace maestro::tools
