// The `maestro` verbs of experiments, trials, workers and datasets (experiment_commands.cpp,
// cluster_commands.cpp); all but `experiment preview` talk to the coordinator.
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
// maestro experiment cancel ID
int ExperimentCancel(int argc, char** argv);
// maestro experiment continue ID
int ExperimentContinue(int argc, char** argv);
// maestro experiment extend ID --trials N
int ExperimentExtend(int argc, char** argv);
// maestro trial compare A B [--json]
int TrialCompare(int argc, char** argv);
// maestro experiment results ID [--format table|markdown|csv] [--json] [--history]
int ExperimentResults(int argc, char** argv);
// maestro trial logs ID [-f] [--offset N]
int TrialLogs(int argc, char** argv);
// maestro event list [--from SEQ] [--experiment ID] [--json]
int EventList(int argc, char** argv);
// maestro worker list [--json]
int WorkerList(int argc, char** argv);
// maestro dataset register NAME --path DIR | --service ADDR [--served-as NAME]
int DatasetRegister(int argc, char** argv);
// maestro dataset list [--json]
int DatasetList(int argc, char** argv);
// maestro cluster init --dir DIR [--host NAME_OR_IP ...] [--admin-expires 90d]
int ClusterInit(int argc, char** argv);
// maestro cluster data-token --dir DIR --name NAME --out FILE [--expires 1h]
int ClusterDataToken(int argc, char** argv);
// maestro token create --role R [--name N] [--expires 90d] [--out FILE] | list | revoke ID
int TokenCreate(int argc, char** argv);
int TokenList(int argc, char** argv);
int TokenRevoke(int argc, char** argv);
// maestro worker enroll NAME [--expires 90d] [--out FILE]
int WorkerEnroll(int argc, char** argv);

}  // namespace maestro::tools
