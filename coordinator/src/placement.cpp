#include "maestro/coordinator/placement.h"

#include <algorithm>

#include "maestro/coordinator/asha.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/shared/config_tree.h"

namespace maestro::coordinator {
std::vector<std::string> StageNames(const ExperimentSpec& spec) {
  std::vector<std::string> names = {spec.train_job()};
  for (size_t i = 0; i < spec.evaluations.size(); ++i) {
    std::string name = spec.evaluations[i].kind;
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      name.append("-").append(std::to_string(i + 1));
    }
    names.push_back(name);
  }
  return names;
}

bool Fits(const WorkerState& worker, const ResourceUse& used, const Resources& wanted) {
  if (wanted.cpu_cores > 0 && worker.cpu_cores > 0 &&
      used.cpu_cores + wanted.cpu_cores > worker.cpu_cores) {
    return false;
  }
  if (wanted.memory_mb > 0 && worker.memory_mb > 0 &&
      used.memory_mb + wanted.memory_mb > worker.memory_mb) {
    return false;
  }
  return used.slots + wanted.slots_per_trial <= worker.slots;
}

Status CheckPlaceable(const Resources& wanted, const WorkerPool& workers) {
  int64_t max_slots = 0, max_cores = 0, max_memory = 0;
  for (const auto& [id, worker] : workers.workers()) {
    max_slots = std::max(max_slots, worker.slots);
    max_cores = std::max(max_cores, worker.cpu_cores);
    max_memory = std::max(max_memory, worker.memory_mb);
  }
  if (max_slots == 0) return OkStatus();
  auto too_much = [](const char* key, int64_t asked, const char* unit, int64_t largest) {
    return InvalidArgumentError(std::string("resources.") + key + ": " + std::to_string(asked) +
                                " " + unit + " per trial, but the largest worker has " +
                                std::to_string(largest) + ": no trial could ever run");
  };
  if (wanted.slots_per_trial > max_slots) {
    return too_much("slots_per_trial", wanted.slots_per_trial, "slots", max_slots);
  }
  const auto known = static_cast<int64_t>(workers.workers().size());
  if (wanted.nodes > known) {
    return InvalidArgumentError("resources.nodes: " + std::to_string(wanted.nodes) +
                                " nodes per trial, but " + std::to_string(known) +
                                " worker(s) are known: the gang could never be placed");
  }
  if (wanted.cpu_cores > max_cores) {
    return too_much("cpu_cores", wanted.cpu_cores, "cores", max_cores);
  }
  if (wanted.memory_mb > max_memory) {
    return too_much("memory_mb", wanted.memory_mb, "MB", max_memory);
  }
  return OkStatus();
}

Result<AttemptPlan> PlanAttempt(const TrialRecord& trial, const ExperimentSpec& spec,
                                const Json& dataset, const PlanOptions& options) {
  const auto names = StageNames(spec);
  if (trial.stage < 0 || trial.stage >= static_cast<int64_t>(names.size())) {
    return FailedPreconditionError("stage " + std::to_string(trial.stage) + " of " +
                                   std::to_string(names.size()) + " does not exist");
  }
  AttemptPlan out;
  out.trial = trial.id;
  out.attempt = trial.attempt;
  out.slots = spec.resources.slots_per_trial;
  out.cpu_cores = spec.resources.cpu_cores;
  out.memory_mb = spec.resources.memory_mb;
  out.grace_period_ms = options.grace_period_ms;
  out.resume = trial.stage_runs > 1;  // this attempt is one of its stage's runs
  Json config;
  if (trial.stage == 0) {
    out.job = spec.train_job();
    MAESTRO_ASSIGN_OR_RETURN(config, TrialConfig(spec, trial.hparams));
    if (spec.searcher.name == "asha") {
      // This attempt trains to its rung's budget (on the schedule of max_budget) and stops.
      MAESTRO_ASSIGN_OR_RETURN(std::vector<int64_t> budgets, RungBudgets(spec.searcher));
      if (trial.rung < 0 || trial.rung >= static_cast<int64_t>(budgets.size())) {
        return FailedPreconditionError("rung " + std::to_string(trial.rung) + " of " +
                                       std::to_string(budgets.size()) + " does not exist");
      }
      MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, AshaStopKey(spec.searcher),
                                             Json(budgets[static_cast<size_t>(trial.rung)])));
    }
  } else {
    const EvaluationSpec& eval = spec.evaluations.at(static_cast<size_t>(trial.stage - 1));
    out.job = eval.kind;
    config = eval.config;
    const Json* pretrain = trial.results.Find(names[0]);
    const Json* checkpoint = pretrain != nullptr ? pretrain->Find("checkpoint") : nullptr;
    if (checkpoint == nullptr || !checkpoint->is_string()) {
      return FailedPreconditionError("the pretraining stage recorded no final checkpoint");
    }
    out.placement.pretrained = checkpoint->as_string();
  }
  if (!config.is_object()) return FailedPreconditionError("the trial config is not an object");
  // The config keeps what the trainer does; the placement says where (the worker writes it in).
  const std::string configured_weights = StripPlacement(config);
  if (trial.stage == 0) out.placement.pretrained = configured_weights;
  out.placement.data_path = dataset.StringOr("path");
  out.placement.data_service = dataset.StringOr("service");
  if (!out.placement.data_service.empty()) {
    out.placement.data_dataset = dataset.StringOr("served_as", spec.dataset);
  }
  const std::string dir = options.runs_dir + "/trial-" + std::to_string(trial.id) + "/" +
                          names[static_cast<size_t>(trial.stage)];
  out.placement.output_dir = dir;
  out.placement.checkpoint_dir = dir + "/checkpoints";
  out.device = ConfiguredDevice(config);
  out.config = std::move(config);
  return out;
}

}  // namespace maestro::coordinator
