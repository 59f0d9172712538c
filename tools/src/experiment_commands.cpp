#include "experiment_commands.h"

#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <memory>

#include "command_util.h"
#include "maestro/coordinator/asha.h"
#include "maestro/coordinator/client.h"
#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/ids.h"
#include "maestro/shared/json.h"

namespace maestro::tools {

int ExperimentCreate(int argc, char** argv) {
  std::string address = "127.0.0.1:7071", key;
  bool json = false;
  FlagParser flags("maestro experiment create FILE",
                   "Submits an experiment file to the coordinator: it is validated (errors\n"
                   "name the offending key), expanded into trials and stored durably. Trials\n"
                   "whose identity an earlier experiment holds are shared, never rerun. A retry\n"
                   "with the same --idempotency-key returns the first result.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("idempotency-key", &key, "key of this request (default: a fresh random one)");
  flags.Add("json", &json, "print JSON");
  const std::string path = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !path.empty());
  if (path.empty()) throw Error(InvalidArgumentError("an experiment FILE is required"));
  auto tree = coordinator::LoadExperimentInlined(path);
  if (!tree.ok()) throw Error(tree.status().WithContext(path));
  if (key.empty()) key = RandomHexId();
  auto created = Connect(address)->CreateExperiment(*tree, key);
  if (!created.ok()) throw Error(created.status());
  if (json) {
    Json::Array trials;
    for (int64_t id : created->trials) trials.emplace_back(id);
    std::cout << Json(Json::Object{{"experiment", created->id},
                                   {"existed", created->existed},
                                   {"trials", Json(std::move(trials))},
                                   {"reused_trials", created->reused_trials}})
                     .Dump()
              << "\n";
    return 0;
  }
  std::cout << (created->existed ? "experiment " : "created experiment ") << created->id << " ("
            << created->trials.size() << " trials, " << created->reused_trials
            << " of them finished or known from earlier experiments)"
            << (created->existed ? ": this request had created it already" : "") << "\n";
  return 0;
}

int ExperimentList(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  bool json = false;
  FlagParser flags("maestro experiment list", "Lists the coordinator's experiments.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("json", &json, "print JSON (one object per line)");
  ParseVerbFlags(flags, argc, argv, false);
  auto experiments = Connect(address)->ListExperiments();
  if (!experiments.ok()) throw Error(experiments.status());
  if (!json) {
    std::cout << std::left << std::setw(6) << "id" << std::setw(10) << "kind" << std::setw(12)
              << "dataset" << std::setw(8) << "trials" << std::setw(10) << "state"
              << "name\n";
  }
  for (const Json& e : *experiments) {
    if (json) {
      std::cout << e.Dump() << "\n";
      continue;
    }
    std::cout << std::setw(6) << e.Find("id")->as_int() << std::setw(10)
              << e.Find("kind")->as_string() << std::setw(12) << e.Find("dataset")->as_string()
              << std::setw(8) << e.Find("trials")->as_int() << std::setw(10)
              << e.Find("state")->as_string() << e.Find("name")->as_string() << "\n";
  }
  return 0;
}

int ExperimentDescribe(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  bool json = false;
  FlagParser flags("maestro experiment describe ID",
                   "One experiment and its trials: state, attempt, worker, live progress (or the\n"
                   "cause of a failure), identity, values.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("json", &json, "print JSON");
  const std::string id_text = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !id_text.empty());
  const int64_t id = ParseId(id_text, "experiment");
  auto described = Connect(address)->DescribeExperiment(id);
  if (!described.ok()) throw Error(described.status());
  const auto& [experiment, trials] = *described;
  if (json) {
    Json::Array list(trials.begin(), trials.end());
    std::cout
        << Json(Json::Object{{"experiment", experiment}, {"trials", Json(std::move(list))}}).Dump()
        << "\n";
    return 0;
  }
  std::cout << "experiment " << id << ": " << experiment.Find("name")->as_string() << " ("
            << experiment.Find("kind")->as_string() << " on "
            << experiment.Find("dataset")->as_string() << "), " << trials.size() << " trials\n";
  std::cout << std::left << std::setw(7) << "trial" << std::setw(11) << "state" << std::setw(9)
            << "attempt" << std::setw(10) << "worker" << std::setw(30) << "progress"
            << "identity      values\n";
  for (const Json& t : trials) {
    std::string progress = "-";
    if (const Json* p = t.Find("progress")) {
      char text[64];
      std::snprintf(
          text, sizeof(text), "%s %lld/%lld loss %.4f", p->Find("stage")->as_string().c_str(),
          static_cast<long long>(p->Find("step")->as_int()),
          static_cast<long long>(p->Find("total_steps")->as_int()), p->Find("loss")->as_double());
      progress = text;
    } else if (const Json* cause = t.Find("cause")) {
      progress = cause->as_string().substr(0, 28);
    }
    const Json* worker = t.Find("worker");
    std::cout << std::setw(7) << t.Find("id")->as_int() << std::setw(11)
              << t.Find("state")->as_string() << std::setw(9) << t.Find("attempt")->as_int()
              << std::setw(10) << (worker != nullptr ? worker->as_string() : "-") << std::setw(30)
              << progress << std::setw(14) << t.Find("identity")->as_string().substr(0, 12)
              << t.Find("hparams")->Dump() << "\n";
  }
  return 0;
}

int ExperimentPreview(int argc, char** argv) {
  bool json = false;
  FlagParser flags("maestro experiment preview FILE",
                   "Reads an experiment file (YAML: kind, dataset, base trainer config,\n"
                   "hyperparameters, searcher, resources; see coordinator/experiment.h) and\n"
                   "lists the trials it would launch: each one's hyperparameter values and\n"
                   "identity (the hash a finished trial is recognised by, so submitting a grid\n"
                   "again or extending it never reruns a cell). Every trial's config is checked\n"
                   "with the trainer's own schema; errors name the offending key. For an asha\n"
                   "searcher, also the rung plan: each rung's budget, how many trials can reach\n"
                   "it at most, and the worst-case budget against training every trial fully.");
  flags.Add("json", &json, "print JSON (one object: experiment and trials) instead of a table");
  const std::string path = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !path.empty());
  if (path.empty()) throw Error(InvalidArgumentError("an experiment FILE is required"));
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
  // asha: the rungs, how many trials can reach each at most, and the worst-case budget.
  Json plan;
  if (spec->searcher.name == "asha") {
    auto budgets = coordinator::RungBudgets(spec->searcher);
    if (!budgets.ok()) throw Error(budgets.status().WithContext(path));
    const coordinator::BudgetBound bound = coordinator::WorstCaseBudget(spec->searcher, *budgets);
    Json::Array rungs;
    for (const auto& rung : bound.rungs) {
      rungs.emplace_back(Json::Object{{"budget", rung.budget}, {"max_trials", rung.trials}});
    }
    plan = Json(Json::Object{{"metric", spec->searcher.metric},
                             {"mode", spec->searcher.mode},
                             {"unit", spec->searcher.unit},
                             {"reduction_factor", spec->searcher.reduction_factor},
                             {"rungs", Json(std::move(rungs))},
                             {"worst_case_budget", bound.total},
                             {"budget_without_stopping", bound.without_stopping}});
  }
  if (json) {
    Json::Object out{{"name", spec->name},
                     {"kind", spec->kind},
                     {"dataset", spec->dataset},
                     {"searcher", spec->searcher.name},
                     {"trials", Json(std::move(rows))}};
    if (!plan.is_null()) out["rung_plan"] = plan;
    std::cout << Json(std::move(out)).Dump() << "\n";
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
  if (!plan.is_null()) {
    const std::string unit = spec->searcher.unit;
    std::cout << "\nasha rungs (" << spec->searcher.metric << ", " << spec->searcher.mode
              << "imize; reduction factor " << spec->searcher.reduction_factor
              << "; a promoted trial resumes from its checkpoint):\n";
    std::cout << std::setw(6) << "rung" << std::setw(16) << ("budget (" + unit + ")")
              << "trials at most\n";
    int64_t k = 0;
    for (const Json& rung : plan.Find("rungs")->as_array()) {
      std::cout << std::setw(6) << k++ << std::setw(16) << rung.Find("budget")->as_int()
                << rung.Find("max_trials")->as_int() << "\n";
    }
    std::cout << "worst-case budget: " << plan.Find("worst_case_budget")->as_int() << " " << unit
              << " (every trial to the last rung: "
              << plan.Find("budget_without_stopping")->as_int() << " " << unit << ")\n";
  }
  return 0;
}

}  // namespace maestro::tools
