// maestro-bench-coordinator: the coordinator's scale check, as far as it exists (issue 6):
// expand a grid experiment, validate every trial config with the trainer's schema, compute
// the identities, and store the whole grid in one synced RocksDB batch.
//
//   maestro-bench-coordinator --experiment FILE --db DIR [--out results.json]
#include <chrono>
#include <iostream>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/coordinator/store.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"

int main(int argc, char** argv) {
  std::string experiment, db, out;
  maestro::FlagParser flags("maestro-bench-coordinator",
                            "Seconds to expand, validate and identify an experiment's trials and "
                            "to store them in one synced batch (a fresh store in --db).");
  flags.Add("experiment", &experiment, "experiment file");
  flags.Add("db", &db, "store folder (removed first)");
  flags.Add("out", &out, "write the figures as JSON here");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  try {
    auto spec = maestro::coordinator::LoadExperiment(experiment);
    if (!spec.ok()) throw maestro::Error(spec.status());
    const auto t0 = Clock::now();
    auto search = maestro::coordinator::MakeSearchMethod(*spec);
    if (!search.ok()) throw maestro::Error(search.status());
    std::vector<maestro::coordinator::NewTrial> trials;
    for (const auto& trial : (*search)->Start()) {
      auto identity = maestro::coordinator::TrialIdentity(*spec, trial.hparams);
      if (!identity.ok()) throw maestro::Error(identity.status());
      trials.push_back({*identity, trial.hparams});
    }
    const auto t1 = Clock::now();
    if (auto removed = maestro::RemoveTree(db); !removed.ok()) throw maestro::Error(removed);
    auto store = maestro::coordinator::Store::Open(db);
    if (!store.ok()) throw maestro::Error(store.status());
    const auto t2 = Clock::now();
    auto created = (*store)->CreateExperiment(
        maestro::Json(maestro::Json::Object{{"name", spec->name}}), trials, "bench");
    if (!created.ok()) throw maestro::Error(created.status());
    const auto t3 = Clock::now();
    maestro::Json result(maestro::Json::Object{
        {"trials", static_cast<int64_t>(trials.size())},
        {"expand_validate_identify_s", seconds(t0, t1)},
        {"store_one_synced_batch_s", seconds(t2, t3)},
        {"total_s", seconds(t0, t1) + seconds(t2, t3)},
    });
    std::cout << result.Dump() << std::endl;
    if (!out.empty()) {
      if (auto w = maestro::WriteFileAtomic(out, result.Dump() + "\n"); !w.ok())
        throw maestro::Error(w);
    }
    return 0;
  } catch (const maestro::Error& e) {
    std::cerr << "maestro-bench-coordinator: " << e.status().ToString() << "\n";
    return 1;
  }
}
