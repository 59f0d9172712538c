// Placement: whether a worker has room for a trial, and the plan of a trial's next attempt
// (its stage's job and config, where it reads and writes). Pure functions of their arguments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/coordinator/attempt.h"
#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/trial_record.h"
#include "maestro/coordinator/worker_pool.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

// A pipeline's stages by name: the training job, then each evaluation's kind ("linprobe-3"
// for a kind that repeats).
std::vector<std::string> StageNames(const ExperimentSpec& spec);

// What a worker's attempts take of it.
struct ResourceUse {
  int64_t slots = 0, cpu_cores = 0, memory_mb = 0;
};

// Whether `worker`, of which `used` is taken, has room for one trial wanting `wanted` (a
// resource the worker or the trial leaves at 0 is not counted).
bool Fits(const WorkerState& worker, const ResourceUse& used, const Resources& wanted);

// Whether a trial wanting `wanted` could ever be placed on the known workers (with none known
// yet, nothing can be judged): INVALID_ARGUMENT naming the resource otherwise.
Status CheckPlaceable(const Resources& wanted, const WorkerPool& workers);

struct PlanOptions {
  std::string runs_dir;  // trial N's stage S writes under <runs_dir>/trial-N/S
  int64_t grace_period_ms = 0;
};

// The plan of `trial`'s current attempt (its stage and attempt as recorded by Assign) on node
// 0: the stage's config without placed keys, its placement on `dataset` (a registered
// dataset's record: path, or service and served_as), device and resume. FAILED_PRECONDITION
// when the stage cannot start (a pipeline's pretraining recorded no checkpoint, a stage that
// does not exist); the config's own errors as TrialConfig returns them.
Result<AttemptPlan> PlanAttempt(const TrialRecord& trial, const ExperimentSpec& spec,
                                const Json& dataset, const PlanOptions& options);

}  // namespace maestro::coordinator
