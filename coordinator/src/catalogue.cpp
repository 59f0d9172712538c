#include "maestro/coordinator/catalogue.h"

#include "maestro/shared/config_tree.h"
#include "maestro/shared/trial_placement.h"

namespace maestro::coordinator {
namespace {

// Whether a stored experiment names its trainer config (or an evaluation's) by a file path.
bool NamesConfigFile(const Json& spec) {
  const Json* config = spec.Find("config");
  if (config != nullptr && config->is_string()) return true;
  const Json* evaluations = spec.Find("evaluations");
  if (evaluations == nullptr || !evaluations->is_array()) return false;
  for (const Json& item : evaluations->as_array()) {
    const Json* c = item.is_object() ? item.Find("config") : nullptr;
    if (c != nullptr && c->is_string()) return true;
  }
  return false;
}

}  // namespace

Result<std::map<int64_t, std::string>> ExperimentCatalogue::Load(const Store& store) {
  std::map<int64_t, std::string> refused;
  for (Json& experiment : store.Experiments()) {
    const Json* id_field = experiment.Find("id");
    const Json* spec_field = experiment.Find("spec");
    if (id_field == nullptr || !id_field->is_int() || spec_field == nullptr) {
      return DataLossError("a stored experiment without its id or spec: " + experiment.Dump());
    }
    const int64_t id = id_field->as_int();
    auto spec = ParseExperiment(*spec_field);
    if (spec.ok()) {
      specs_.emplace(id, std::move(*spec));
    } else if (NamesConfigFile(*spec_field)) {
      // Stored by an older coordinator, which read config paths on its own host: never read
      // now, and never a reason not to start.
      if (experiment.StringOr("state") != "canceled") refused[id] = spec.status().message();
    } else {
      return DataLossError("stored experiment " + std::to_string(id) +
                           " no longer parses: " + spec.status().message());
    }
    experiments_.emplace(id, std::move(experiment));
  }
  for (Json& dataset : store.Datasets()) {
    const std::string name = dataset.StringOr("name");
    if (!name.empty()) datasets_.emplace(name, std::move(dataset));
  }
  return refused;
}

const ExperimentSpec* ExperimentCatalogue::Spec(int64_t experiment) const {
  auto it = specs_.find(experiment);
  return it == specs_.end() ? nullptr : &it->second;
}

Json* ExperimentCatalogue::Experiment(int64_t id) {
  auto it = experiments_.find(id);
  return it == experiments_.end() ? nullptr : &it->second;
}

void ExperimentCatalogue::Add(int64_t id, Json record, ExperimentSpec spec) {
  experiments_[id] = std::move(record);
  specs_.insert_or_assign(id, std::move(spec));
}

std::vector<Json> ExperimentCatalogue::Summaries(
    const std::map<int64_t, TrialRecord>& trials) const {
  std::vector<Json> out;
  for (const auto& [id, e] : experiments_) {
    std::map<TrialState, int64_t> counts;
    const std::vector<int64_t> ids = TrialIdsOf(e);
    int64_t settled = 0;  // finished, or stopped by its searcher (nothing runs it now)
    for (int64_t t : ids) {
      auto trial = trials.find(t);
      if (trial == trials.end()) continue;
      ++counts[trial->second.state];
      if (IsFinished(trial->second.state) || trial->second.state == TrialState::kStopped) {
        ++settled;
      }
    }
    std::string state = "active";
    if (e.StringOr("state") == "canceled") {
      state = "canceled";
    } else if (settled == static_cast<int64_t>(ids.size())) {
      state =
          counts[TrialState::kFailed] + counts[TrialState::kCanceled] > 0 ? "failed" : "completed";
    }
    Json::Object by_state;
    for (const auto& [s, n] : counts) {
      if (n > 0) by_state[std::string(TrialStateName(s))] = Json(n);
    }
    out.emplace_back(Json::Object{{"id", id},
                                  {"name", e.StringOr("name")},
                                  {"kind", e.StringOr("kind")},
                                  {"dataset", e.StringOr("dataset")},
                                  {"state", state},
                                  {"trials", static_cast<int64_t>(ids.size())},
                                  {"trials_by_state", Json(std::move(by_state))}});
  }
  return out;
}

std::vector<int64_t> ExperimentCatalogue::TrialIdsOf(const Json& experiment) {
  std::vector<int64_t> ids;
  const Json* trials = experiment.Find("trials");
  if (trials == nullptr || !trials->is_array()) return ids;
  for (const Json& t : trials->as_array()) {
    if (t.is_int()) ids.push_back(t.as_int());
  }
  return ids;
}

const Json* ExperimentCatalogue::Dataset(const std::string& name) const {
  auto it = datasets_.find(name);
  return it == datasets_.end() ? nullptr : &it->second;
}

std::string ExperimentCatalogue::DatasetNames() const {
  std::string known;
  for (const auto& [name, unused] : datasets_) known += (known.empty() ? "" : ", ") + name;
  return known.empty() ? "none" : known;
}

void ExperimentCatalogue::PutDataset(const std::string& name, Json record) {
  datasets_[name] = std::move(record);
}

std::vector<Json> ExperimentCatalogue::Datasets() const {
  std::vector<Json> out;
  for (const auto& [name, d] : datasets_) out.push_back(d);
  return out;
}

Status CheckTrialInputs(const ExperimentSpec& spec, const PathRoots& data_roots,
                        const std::string& runs_dir) {
  const std::string no_service =
      ": a trial config cannot name a data service: every trial reads the experiment's "
      "registered dataset ('" +
      spec.dataset + "')";
  if (FindConfigValue(spec.config, "data.service") != nullptr) {
    return InvalidArgumentError("config.data.service" + no_service);
  }
  for (size_t i = 0; i < spec.evaluations.size(); ++i) {
    if (FindConfigValue(spec.evaluations[i].config, "data.service") != nullptr) {
      return InvalidArgumentError("evaluations[" + std::to_string(i) + "].config.data.service" +
                                  no_service);
    }
  }
  PathRoots weights = data_roots;
  auto runs = PathRoots::Make({runs_dir}, "--runs", false);
  if (runs.ok()) weights.Add(*runs);
  auto check_weights = [&](const std::string& key, const Json& value) -> Status {
    if (!value.is_string()) return InvalidArgumentError(key + ": a path is required");
    if (value.as_string() == "none") return OkStatus();
    return weights.Check(key, value.as_string(), false);
  };
  bool pretrained_searched = false;  // then it replaces the base config's value in every trial
  for (const auto& h : spec.hyperparameters) {
    for (const char* placed : PlacedConfigKeys()) {
      if (h.key == placed) {
        return InvalidArgumentError("hyperparameters." + h.key +
                                    ": set by the coordinator for every trial (the registered "
                                    "dataset, the runs folder); it cannot be searched");
      }
    }
    if (h.key == "classify.pretrained") {
      pretrained_searched = true;
      if (h.type == "const") {
        MAESTRO_RETURN_IF_ERROR(check_weights("hyperparameters.classify.pretrained", h.val));
      } else {
        for (const Json& v : h.vals) {
          MAESTRO_RETURN_IF_ERROR(check_weights("hyperparameters.classify.pretrained", v));
        }
      }
    }
  }
  // A pipeline's evaluations probe its own pretraining's checkpoint (set per trial).
  if (spec.kind != "pipeline" && !pretrained_searched) {
    if (const Json* pretrained = FindConfigValue(spec.config, "classify.pretrained")) {
      MAESTRO_RETURN_IF_ERROR(check_weights("config.classify.pretrained", *pretrained));
    }
  }
  return OkStatus();
}

Result<Json> DatasetRecord(const std::string& name, const Json& dataset,
                           const PathRoots& data_roots, int64_t now_ms, const std::string& actor) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return InvalidArgumentError("name: a dataset name is non-empty without '/', not '" + name +
                                "'");
  }
  if (!dataset.is_object()) return InvalidArgumentError("dataset_json: not a JSON object");
  const std::string path = dataset.StringOr("path"), service = dataset.StringOr("service");
  if (path.empty() && service.empty()) {
    return InvalidArgumentError("dataset_json: give `path` (ingested shards) or `service`");
  }
  if (!path.empty() && path.front() != '/') {
    return InvalidArgumentError("path: '" + path + "' is not absolute (workers run elsewhere)");
  }
  if (!path.empty()) MAESTRO_RETURN_IF_ERROR(data_roots.Check("path", path, false));
  const Json* splits = dataset.Find("splits");
  if (splits == nullptr || !splits->is_object() || splits->as_object().empty()) {
    return InvalidArgumentError("splits: a dataset lists its splits with their content hashes");
  }
  Json record = dataset;
  record.as_object()["name"] = Json(name);
  record.as_object()["registered_ms"] = Json(now_ms);
  record.as_object()["registered_by"] = Json(actor);
  return record;
}

}  // namespace maestro::coordinator
