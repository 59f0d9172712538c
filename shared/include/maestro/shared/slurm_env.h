// A process started by `srun` (a Slurm job step) as one rank of a data-parallel run: its rank,
// the world, its rank on its node, and where rank 0 serves the rendezvous, from the SLURM_*
// variables Slurm sets for each task of a step (torchrun's RANK/WORLD_SIZE/... under another
// name). A batch script itself (no step) is not a rank: mpirun inside the allocation, or srun,
// starts the ranks. Plain functions over an environment lookup; no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "maestro/shared/status.h"

namespace maestro {

struct SlurmRank {
  int64_t rank = 0, world_size = 1, local_rank = 0;
  int64_t job_id = 0;
  std::string first_host;  // the step's first node (rank 0's: srun places ranks in order)
  int64_t port = 0;        // MASTER_PORT when set, else 20000 + job id % 20000
};

using EnvLookup = std::function<const char*(const char*)>;

// nullopt outside an srun step (no SLURM_STEP_ID / SLURM_STEP_NUM_TASKS). INVALID_ARGUMENT
// naming the variable for values Slurm would never set (a rank outside the world, an empty
// or malformed node list).
Result<std::optional<SlurmRank>> SlurmRankFromEnvironment(const EnvLookup& env);

}  // namespace maestro
