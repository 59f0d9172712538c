#include "experiment_commands.h"

#include <cstdio>
#include <iomanip>
#include <iostream>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"

namespace maestro::tools {
namespace {

// A value as a table shows it: numbers in their shortest form (0.9, not 0.90000000000000002).
std::string Cell(const Json& value) {
  if (value.is_number() && !value.is_int()) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.6g", value.as_double());
    return text;
  }
  return value.Dump();
}

}  // namespace

int ExperimentPreview(int argc, char** argv) {
  bool json = false;
  FlagParser flags("maestro experiment preview FILE",
                   "Reads an experiment file (YAML: kind, dataset, base trainer config,\n"
                   "hyperparameters, searcher, resources; see coordinator/experiment.h) and\n"
                   "lists the trials it would launch: each one's hyperparameter values and\n"
                   "identity (the hash a finished trial is recognised by, so submitting a grid\n"
                   "again or extending it never reruns a cell). Every trial's config is checked\n"
                   "with the trainer's own schema; errors name the offending key.");
  flags.Add("json", &json, "print JSON (one object: experiment and trials) instead of a table");
  // The file is the first argument after the verb; flags follow it.
  if (argc < 4 || std::string(argv[3]).rfind("--", 0) == 0) {
    ParseFlagsOrExit(flags, argc - 2, argv + 2);  // --help, or a missing FILE
    throw Error(InvalidArgumentError("an experiment FILE is required"));
  }
  const std::string path = argv[3];
  ParseFlagsOrExit(flags, argc - 3, argv + 3);
  auto spec = coordinator::LoadExperiment(path);
  if (!spec.ok()) throw Error(spec.status().WithContext(path));
  auto search = coordinator::MakeSearchMethod(*spec);
  if (!search.ok()) throw Error(search.status().WithContext(path));
  const auto trials = (*search)->Start();
  Json::Array rows;
  for (const auto& trial : trials) {
    auto identity = coordinator::TrialIdentity(*spec, trial.hparams);
    if (!identity.ok()) {
      throw Error(identity.status().WithContext(path + ": trial " + std::to_string(trial.ordinal) +
                                                " " + trial.hparams.Dump()));
    }
    rows.emplace_back(Json::Object{
        {"ordinal", trial.ordinal}, {"identity", *identity}, {"hparams", trial.hparams}});
  }
  if (json) {
    std::cout << Json(Json::Object{{"name", spec->name},
                                   {"kind", spec->kind},
                                   {"dataset", spec->dataset},
                                   {"searcher", spec->searcher.name},
                                   {"trials", Json(std::move(rows))}})
                     .Dump()
              << "\n";
    return 0;
  }
  std::cout << spec->name << ": " << spec->kind << " on " << spec->dataset << ", "
            << spec->searcher.name << " searcher, " << rows.size() << " trials\n";
  std::cout << std::left << std::setw(6) << "trial" << std::setw(14) << "identity";
  for (const auto& h : spec->hyperparameters) std::cout << std::setw(22) << h.key;
  std::cout << "\n";
  for (const auto& row : rows) {
    std::cout << std::setw(6) << row.Find("ordinal")->as_int() << std::setw(14)
              << row.Find("identity")->as_string().substr(0, 12);
    for (const auto& h : spec->hyperparameters)
      std::cout << std::setw(22) << Cell(*row.Find("hparams")->Find(h.key));
    std::cout << "\n";
  }
  return 0;
}

}  // namespace maestro::tools
