// Search methods: which trials an experiment runs. A SearchMethod is fed trial events, so an
// adaptive method (ASHA, say) can later stop, continue or add trials without the scheduler
// changing; grid and random decide everything up front. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "maestro/coordinator/experiment.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

// One trial the searcher asks for: its hyperparameter values (dotted key -> value).
struct TrialRequest {
  int64_t ordinal = 0;  // position in the searcher's order
  Json hparams;         // object
};

// What the coordinator tells a search method about a trial.
struct TrialEvent {
  enum class Kind { kMetrics, kEnded };
  Kind kind = Kind::kEnded;
  int64_t ordinal = 0;
  Json metrics;  // kMetrics: {step, loss, ...}; kEnded: {status, ...}
};

// Trials one experiment may have: far above any ablation grid, and small enough that making
// and checking them all takes seconds (the coordinator's scale benchmark runs 10,000).
inline constexpr int64_t kMaxTrialsPerExperiment = 100000;

class SearchMethod {
 public:
  virtual ~SearchMethod() = default;
  // The trials to start with.
  virtual std::vector<TrialRequest> Start() = 0;
  // More trials in answer to an event (grid and random: none).
  virtual std::vector<TrialRequest> OnTrialEvent(const TrialEvent& event) = 0;
};

// Grid: the cartesian product of the hyperparameters' values, keys in sorted order, the last
// key varying fastest. INVALID_ARGUMENT (naming the key) for a range without `count`, an empty
// categorical, or more than `max_trials` cells, computed from the counts before any value is
// made. Random: max_trials draws (at most `max_trials`); trial i's values depend only on
// (seed, i, key), so raising max_trials keeps the earlier trials.
Result<std::unique_ptr<SearchMethod>> MakeSearchMethod(
    const ExperimentSpec& spec, int64_t max_trials = kMaxTrialsPerExperiment);

// The trainer config tree of a trial: the base config with the hyperparameters' values and
// the experiment's checkpoint policy applied (dotted keys, SetConfigValue). INVALID_ARGUMENT
// naming the key when a step of its path is not a mapping in the base config.
Result<Json> TrialConfig(const ExperimentSpec& spec, const Json& hparams);

// A trial's identity: sha256 over the experiment kind, the dataset's name, the trainer's result
// hash of the trial config (paths, worker and thread counts, logging and checkpoint cadence
// and max_steps left out: trainer config.h) and, for pipelines, each evaluation's result hash.
// The same cell of a grid has the same identity in every experiment: a finished one is never
// rerun. INVALID_ARGUMENT naming the key when the trainer's schema rejects the config.
Result<std::string> TrialIdentity(const ExperimentSpec& spec, const Json& hparams);

}  // namespace maestro::coordinator
