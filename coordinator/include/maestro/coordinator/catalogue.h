// The experiment catalogue: the experiments with their parsed specs, and the registered
// datasets, in memory as loaded from the store and changed through the scheduler; and the
// checks of what a request may ask for (paths under the roots, placed keys left alone). Not
// thread-safe: the scheduler's lock covers it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/store.h"
#include "maestro/coordinator/trial_record.h"
#include "maestro/shared/json.h"
#include "maestro/shared/path_roots.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

class ExperimentCatalogue {
 public:
  // Loads the stored experiments and datasets. Returns the experiments this coordinator
  // refuses to run (stored by an older one with a trainer config as a file path: id -> why);
  // DATA_LOSS for any other stored experiment that does not parse.
  Result<std::map<int64_t, std::string>> Load(const Store& store);

  // The parsed spec of an experiment; nullptr for an unknown or refused one.
  const ExperimentSpec* Spec(int64_t experiment) const;
  // An experiment's record; nullptr for an unknown id.
  Json* Experiment(int64_t id);
  const std::map<int64_t, Json>& experiments() const { return experiments_; }
  void Add(int64_t id, Json record, ExperimentSpec spec);
  // One line per experiment: id, name, kind, dataset, trials, trials_by_state and its state
  // (active; canceled; completed or failed once every trial is finished), from `trials`.
  std::vector<Json> Summaries(const std::map<int64_t, TrialRecord>& trials) const;
  // An experiment record's trial ids.
  static std::vector<int64_t> TrialIdsOf(const Json& experiment);

  // A registered dataset's record; nullptr for an unknown name.
  const Json* Dataset(const std::string& name) const;
  // The registered names ("a, b"), or "none".
  std::string DatasetNames() const;
  void PutDataset(const std::string& name, Json record);
  std::vector<Json> Datasets() const;

 private:
  std::map<int64_t, Json> experiments_;
  std::map<int64_t, ExperimentSpec> specs_;
  std::map<std::string, Json> datasets_;
};

// What a request may not choose in an experiment: a data service of its own (INVALID_ARGUMENT),
// a hyperparameter over a placed key (INVALID_ARGUMENT), weights outside `data_roots` and
// `runs_dir` (PERMISSION_DENIED).
Status CheckTrialInputs(const ExperimentSpec& spec, const PathRoots& data_roots,
                        const std::string& runs_dir);

// A dataset registration as stored (with `name`, `registered_ms`, `registered_by`), or
// INVALID_ARGUMENT / PERMISSION_DENIED naming the problem.
Result<Json> DatasetRecord(const std::string& name, const Json& dataset,
                           const PathRoots& data_roots, int64_t now_ms, const std::string& actor);

}  // namespace maestro::coordinator
