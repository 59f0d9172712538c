// Search methods: which trials an experiment runs, and, for an adaptive one (asha.h), which to
// stop at a rung and which to resume: the scheduler feeds a SearchMethod its trials' events and
// applies the actions it answers with, in the same stored change as the event. Grid and random
// decide everything up front. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "maestro/coordinator/asha.h"
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
  enum class Kind {
    kRungReached,  // the trial's attempt completed at its rung's budget, with its metric
    kEnded,        // the trial failed or was canceled
    kContinued,    // the experiment's failed and canceled trials were taken up again
  };
  Kind kind = Kind::kEnded;
  int64_t trial = 0;
  int64_t rung = 0;   // kRungReached
  double metric = 0;  // kRungReached
};

// What a search method asks for in answer to an event.
struct SearchActions {
  bool stop = false;            // kRungReached: stop that trial at its rung, checkpoint kept
  std::vector<int64_t> resume;  // stopped trials to resume, each to its next rung
};

// Trials one experiment may have: far above any ablation grid, and small enough that making
// and checking them all takes seconds (the coordinator's scale benchmark runs 10,000).
inline constexpr int64_t kMaxTrialsPerExperiment = 100000;

class SearchMethod {
 public:
  virtual ~SearchMethod() = default;
  // The trials to start with (all of them: asha too draws its trials up front).
  virtual std::vector<TrialRequest> Start() = 0;
  // The actions after `event`. `trials`: the experiment's trials as they stand, the event's
  // own already updated (a reported metric is in its metrics). The method keeps no state of
  // its own between events: what it decides from is stored with the trials. Grid and random:
  // nothing.
  virtual SearchActions OnTrialEvent(const TrialEvent& event,
                                     const std::vector<AshaTrial>& trials) = 0;
};

// The held-out images an ASHA pretraining measures its rung metric on when its config does
// not say (eval.images).
inline constexpr int64_t kAshaHeldOutImages = 1000;

// Grid: the cartesian product of the hyperparameters' values, keys in sorted order, the last
// key varying fastest. INVALID_ARGUMENT (naming the key) for a range without `count`, an empty
// categorical, or more than `max_trials` cells, computed from the counts before any value is
// made. Random and asha: max_trials draws (at most `max_trials`); trial i's values depend only
// on (seed, i, key), so raising max_trials keeps the earlier trials.
Result<std::unique_ptr<SearchMethod>> MakeSearchMethod(
    const ExperimentSpec& spec, int64_t max_trials = kMaxTrialsPerExperiment);

// The trainer config tree of a trial: the base config with the hyperparameters' values and
// the experiment's checkpoint policy applied (dotted keys, SetConfigValue); for asha, the
// length key set to max_budget (asha.h) and a pretraining's eval.images defaulted to
// kAshaHeldOutImages (0, which turns the measure off, is refused). INVALID_ARGUMENT naming the
// key when a step of its path is not a mapping in the base config.
Result<Json> TrialConfig(const ExperimentSpec& spec, const Json& hparams);

// A trial's identity: sha256 over the experiment kind, the dataset's name, the trainer's result
// hash of the trial config (paths, worker and thread counts, logging and checkpoint cadence
// and max_steps left out: trainer config.h) and, for pipelines, each evaluation's result hash.
// The same cell of a grid has the same identity in every experiment: a finished one is never
// rerun. INVALID_ARGUMENT naming the key when the trainer's schema rejects the config.
Result<std::string> TrialIdentity(const ExperimentSpec& spec, const Json& hparams);

}  // namespace maestro::coordinator
