#include "maestro/shared/slurm_env.h"

#include <cstdlib>

#include "maestro/shared/hostlist.h"

namespace maestro {
namespace {

// A non-negative decimal, or -1.
int64_t Decimal(const char* text) {
  if (text == nullptr || *text == '\0') return -1;
  int64_t value = 0;
  for (const char* c = text; *c != '\0'; ++c) {
    if (*c < '0' || *c > '9' || value > (int64_t{1} << 40)) return -1;
    value = value * 10 + (*c - '0');
  }
  return value;
}

}  // namespace

Result<std::optional<SlurmRank>> SlurmRankFromEnvironment(const EnvLookup& env) {
  if (env("SLURM_STEP_ID") == nullptr || env("SLURM_STEP_NUM_TASKS") == nullptr) {
    return std::optional<SlurmRank>();
  }
  SlurmRank r;
  r.world_size = Decimal(env("SLURM_STEP_NUM_TASKS"));
  r.rank = Decimal(env("SLURM_PROCID"));
  r.local_rank = Decimal(env("SLURM_LOCALID"));
  r.job_id = Decimal(env("SLURM_JOB_ID"));
  if (r.world_size < 1) return InvalidArgumentError("SLURM_STEP_NUM_TASKS: not a task count");
  if (r.rank < 0 || r.rank >= r.world_size) {
    return InvalidArgumentError("SLURM_PROCID: not a rank of the step's " +
                                std::to_string(r.world_size) + " tasks");
  }
  if (r.local_rank < 0) return InvalidArgumentError("SLURM_LOCALID: not a local rank");
  if (r.job_id < 0) return InvalidArgumentError("SLURM_JOB_ID: not a job id");
  const char* nodes = env("SLURM_STEP_NODELIST");
  if (nodes == nullptr) nodes = env("SLURM_JOB_NODELIST");
  if (nodes == nullptr) return InvalidArgumentError("SLURM_STEP_NODELIST: not set");
  auto hosts = ExpandHostList(nodes);
  if (!hosts.ok()) return hosts.status().WithContext("SLURM_STEP_NODELIST");
  r.first_host = hosts->front();
  const int64_t port = Decimal(env("MASTER_PORT"));
  r.port = port > 0 && port <= 65535 ? port : 20000 + r.job_id % 20000;
  return std::optional<SlurmRank>(std::move(r));
}

}  // namespace maestro
