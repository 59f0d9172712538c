#include "maestro/coordinator/experiment.h"

#include <algorithm>
#include <set>

#include "maestro/coordinator/asha.h"
#include "maestro/shared/config_tree.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/train_config.h"

namespace maestro::coordinator {
namespace {

const std::set<std::string> kKinds = {"pretrain", "finetune", "linprobe", "pipeline"};
const std::set<std::string> kEvaluationKinds = {"finetune", "linprobe"};

Status Bad(const std::string& key, const std::string& message) {
  return InvalidArgumentError(key + ": " + message);
}

// A trainer config inline: the coordinator opens no file a request names (a path there would
// make it read its own host's files, answer whether one exists, and depend at every restart on
// a file outside its state).
Result<Json> InlineTrainerConfig(const Json& value, const std::string& key) {
  if (value.is_object()) return value;
  if (value.is_string()) {
    return Bad(key, "'" + value.as_string() +
                        "' names a file, and the coordinator reads no file a request names: "
                        "send the config's content (`maestro experiment create FILE` reads the "
                        "files FILE names and sends them inline)");
  }
  return Bad(key, "must be a mapping (a trainer config)");
}

// The client's side: a trainer config given inline (a mapping) or as a path relative to the
// experiment file, read here.
Result<Json> ReadTrainerConfig(const Json& value, const std::string& key,
                               const std::string& base_dir) {
  if (value.is_object()) return value;
  if (!value.is_string()) return Bad(key, "must be a path or a mapping");
  std::string path = value.as_string();
  if (!path.empty() && path[0] != '/' && !base_dir.empty()) path = base_dir + "/" + path;
  auto tree = LoadConfigFile(path);
  if (!tree.ok()) return tree.status().WithContext(key);
  if (!tree->is_object()) return Bad(key, path + " is not a mapping");
  return *tree;
}

double Number(const Json& spec, const std::string& key, const char* field, bool& ok,
              Status& error) {
  const Json* v = spec.Find(field);
  if (v == nullptr || !v->is_number()) {
    if (ok) error = Bad(key + "." + field, "a number is required");
    ok = false;
    return 0;
  }
  return v->as_double();
}

Result<HyperParameter> ParseHyperParameter(const std::string& dotted, const Json& spec) {
  const std::string key = "hyperparameters." + dotted;
  HyperParameter h;
  h.key = dotted;
  if (dotted.empty() || dotted.front() == '.' || dotted.back() == '.') {
    return Bad(key, "not a dotted key into the trainer config");
  }
  if (spec.is_array()) {  // shorthand: categorical
    h.type = "categorical";
    h.vals = spec.as_array();
  } else if (!spec.is_object()) {  // shorthand: const
    h.type = "const";
    h.val = spec;
  } else {
    const Json* type = spec.Find("type");
    if (type == nullptr || !type->is_string()) {
      return Bad(key + ".type", "required: const, int, double, log or categorical");
    }
    h.type = type->as_string();
    std::set<std::string> allowed = {"type"};
    bool ok = true;
    Status error;
    if (h.type == "const") {
      allowed.insert("val");
      const Json* val = spec.Find("val");
      if (val == nullptr) return Bad(key + ".val", "required for a const");
      h.val = *val;
    } else if (h.type == "int" || h.type == "double" || h.type == "log") {
      allowed.insert({"minval", "maxval", "count"});
      h.minval = Number(spec, key, "minval", ok, error);
      h.maxval = Number(spec, key, "maxval", ok, error);
      if (h.type == "log") {
        allowed.insert("base");
        if (spec.Find("base") != nullptr) h.base = Number(spec, key, "base", ok, error);
        if (ok && h.base <= 1) return Bad(key + ".base", "must be above 1");
      }
      if (const Json* count = spec.Find("count")) {
        if (!count->is_int() || count->as_int() <= 0)
          return Bad(key + ".count", "must be a positive integer");
        h.count = count->as_int();
      }
      if (!ok) return error;
      if (h.type == "int" && (h.minval != static_cast<double>(static_cast<int64_t>(h.minval)) ||
                              h.maxval != static_cast<double>(static_cast<int64_t>(h.maxval)))) {
        return Bad(key, "int bounds must be integers");
      }
      if (h.minval > h.maxval) return Bad(key, "minval exceeds maxval");
    } else if (h.type == "categorical") {
      allowed.insert("vals");
      const Json* vals = spec.Find("vals");
      if (vals == nullptr || !vals->is_array()) return Bad(key + ".vals", "a list is required");
      h.vals = vals->as_array();
    } else {
      return Bad(key + ".type",
                 "'" + h.type + "' is not one of const, int, double, log, categorical");
    }
    for (const auto& [field, value] : spec.as_object()) {
      if (allowed.count(field) == 0) return Bad(key + "." + field, "unknown key for " + h.type);
    }
  }
  if (h.type == "categorical" && h.vals.empty()) return Bad(key, "no values to search");
  return h;
}

bool IsCudaDevice(const Json& device) {
  return device.is_string() && device.as_string().rfind("cuda", 0) == 0;
}

// Whether every trial of `spec` trains on CUDA: run.device in its config, or a run.device
// hyperparameter whose every value is a CUDA device.
bool TrialsUseCuda(const ExperimentSpec& spec) {
  const Json* run = spec.config.Find("run");
  const Json* device = run != nullptr ? run->Find("device") : nullptr;
  bool cuda = device != nullptr && IsCudaDevice(*device);
  for (const auto& h : spec.hyperparameters) {
    if (h.key != "run.device") continue;
    if (h.type == "const") {
      cuda = IsCudaDevice(h.val);
    } else {
      cuda = !h.vals.empty() && std::all_of(h.vals.begin(), h.vals.end(), IsCudaDevice);
    }
  }
  return cuda;
}

// The asha settings, defaults filled in (asha.h).
Status CheckAsha(ExperimentSpec& spec) {
  SearcherSpec& s = spec.searcher;
  if (s.metric.empty()) s.metric = spec.kind == "pretrain" ? "heldout_masked_loss" : "top1";
  MAESTRO_RETURN_IF_ERROR(CheckAshaMetric(spec.kind, s.metric));
  if (s.mode.empty()) s.mode = s.metric == "top1" || s.metric == "top5" ? "max" : "min";
  if (s.mode != "min" && s.mode != "max") {
    return Bad("searcher.mode", "'" + s.mode + "' is not min or max");
  }
  if (s.unit != "steps" && s.unit != "epochs") {
    return Bad("searcher.unit", "'" + s.unit + "' is not steps or epochs");
  }
  if (s.min_budget <= 0) return Bad("searcher.min_budget", "a positive budget is required");
  if (s.max_budget <= 0) return Bad("searcher.max_budget", "a positive budget is required");
  if (s.unit == "epochs" && s.max_budget > static_cast<int64_t>(engine::kMaxEpochs)) {
    return Bad("searcher.max_budget", "above " + std::to_string(engine::kMaxEpochs) + " epochs");
  }
  return RungBudgets(s).status();
}

}  // namespace

Result<ExperimentSpec> ParseExperiment(const Json& tree) {
  if (!tree.is_object()) return InvalidArgumentError("an experiment file is a mapping");
  ExperimentSpec spec;
  ConfigReader root(&tree, "");
  root.Read("name", &spec.name);
  root.Read("description", &spec.description);
  root.Read("kind", &spec.kind);
  root.Read("dataset", &spec.dataset);
  int64_t seed = 0;
  std::string searcher_name = spec.searcher.name;
  ConfigReader& searcher = root.Section("searcher");
  searcher.Read("name", &searcher_name);
  searcher.Read("max_trials", &spec.searcher.max_trials);
  searcher.Read("seed", &seed);
  searcher.Read("metric", &spec.searcher.metric);
  searcher.Read("mode", &spec.searcher.mode);
  searcher.Read("unit", &spec.searcher.unit);
  searcher.Read("min_budget", &spec.searcher.min_budget);
  searcher.Read("max_budget", &spec.searcher.max_budget);
  searcher.Read("reduction_factor", &spec.searcher.reduction_factor);
  ConfigReader& resources = root.Section("resources");
  resources.Read("slots_per_trial", &spec.resources.slots_per_trial);
  resources.Read("nodes", &spec.resources.nodes);
  resources.Read("cpu_cores", &spec.resources.cpu_cores);
  resources.Read("memory_mb", &spec.resources.memory_mb);
  resources.Read("priority", &spec.resources.priority);
  root.Read("max_concurrent_trials", &spec.max_concurrent_trials);
  root.Read("max_restarts", &spec.max_restarts);
  ConfigReader& checkpoint = root.Section("checkpoint");
  checkpoint.Read("interval_steps", &spec.checkpoint_interval_steps);
  checkpoint.Read("keep_last", &spec.checkpoint_keep_last);
  // Read by hand below; marked read here so Finish() does not call them unknown.
  const bool has_config = root.Has("config");
  const bool has_hparams = root.Has("hyperparameters");
  const bool has_evaluations = root.Has("evaluations");
  MAESTRO_RETURN_IF_ERROR(root.Finish());
  spec.searcher.name = searcher_name;
  spec.searcher.seed = static_cast<uint64_t>(seed);

  if (spec.name.empty()) return Bad("name", "required");
  if (kKinds.count(spec.kind) == 0) {
    return Bad("kind", "'" + spec.kind + "' is not one of pretrain, finetune, linprobe, pipeline");
  }
  if (spec.dataset.empty()) return Bad("dataset", "required (a registered dataset's name)");
  if (spec.searcher.name != "grid" && spec.searcher.name != "random" &&
      spec.searcher.name != "asha") {
    return Bad("searcher.name", "'" + spec.searcher.name + "' is not grid, random or asha");
  }
  if (spec.searcher.name != "grid" && spec.searcher.max_trials <= 0) {
    return Bad("searcher.max_trials",
               "a " + spec.searcher.name + " searcher needs a positive max_trials");
  }
  if (spec.searcher.name == "asha") {
    MAESTRO_RETURN_IF_ERROR(CheckAsha(spec));
  } else {
    const SearcherSpec defaults;
    const SearcherSpec& s = spec.searcher;
    if (!s.metric.empty() || !s.mode.empty() || s.unit != defaults.unit || s.min_budget != 0 ||
        s.max_budget != 0 || s.reduction_factor != defaults.reduction_factor) {
      const std::string keys = "metric, mode, unit, min_budget, max_budget, reduction_factor";
      return Bad("searcher", keys + ": asha's settings, not " + s.name + "'s");
    }
  }
  if (spec.resources.slots_per_trial <= 0) return Bad("resources.slots_per_trial", "must be >= 1");
  if (spec.resources.nodes <= 0) return Bad("resources.nodes", "must be >= 1");
  if (spec.resources.cpu_cores < 0 || spec.resources.memory_mb < 0) {
    return Bad("resources", "cpu_cores and memory_mb must not be negative");
  }
  if (spec.max_concurrent_trials < 0) return Bad("max_concurrent_trials", "must not be negative");
  if (spec.max_restarts < 0) return Bad("max_restarts", "must not be negative");

  spec.config = Json(Json::Object{});
  if (has_config) {
    MAESTRO_ASSIGN_OR_RETURN(spec.config, InlineTrainerConfig(*tree.Find("config"), "config"));
  }
  if (has_hparams) {
    const Json& hparams = *tree.Find("hyperparameters");
    if (!hparams.is_object()) return Bad("hyperparameters", "must be a mapping of dotted keys");
    for (const auto& [key, value] : hparams.as_object()) {  // sorted by key
      MAESTRO_ASSIGN_OR_RETURN(HyperParameter h, ParseHyperParameter(key, value));
      spec.hyperparameters.push_back(std::move(h));
    }
  }
  if (has_evaluations) {
    if (spec.kind != "pipeline") return Bad("evaluations", "only a pipeline has evaluations");
    const Json& list = *tree.Find("evaluations");
    if (!list.is_array()) return Bad("evaluations", "must be a list");
    for (size_t i = 0; i < list.as_array().size(); ++i) {
      const std::string key = "evaluations[" + std::to_string(i) + "]";
      const Json& item = list.as_array()[i];
      if (!item.is_object()) return Bad(key, "must be a mapping with kind and config");
      EvaluationSpec eval;
      for (const auto& [field, value] : item.as_object()) {
        if (field == "kind" && value.is_string()) {
          eval.kind = value.as_string();
        } else if (field == "config") {
          MAESTRO_ASSIGN_OR_RETURN(eval.config, InlineTrainerConfig(value, key + ".config"));
        } else {
          return Bad(key + "." + field, "unknown key (kind, config)");
        }
      }
      if (kEvaluationKinds.count(eval.kind) == 0) {
        return Bad(key + ".kind", "must be finetune or linprobe");
      }
      if (eval.config.is_null()) eval.config = Json(Json::Object{});
      spec.evaluations.push_back(std::move(eval));
    }
  }
  if (spec.searcher.name == "asha") {
    for (const auto& h : spec.hyperparameters) {
      if (h.key == "optim.steps" || h.key == "optim.epochs" || h.key == "optim.max_steps" ||
          h.key == "optim.max_epochs") {
        return Bad("hyperparameters." + h.key,
                   "an asha searcher sets the trials' length and stops (searcher.max_budget)");
      }
    }
  }
  if (spec.kind == "pipeline" && spec.evaluations.empty()) {
    return Bad("evaluations", "a pipeline needs at least one evaluation (finetune or linprobe)");
  }
  return spec;
}

Status CheckWorkerShape(const ExperimentSpec& spec) {
  // A CPU trial's ranks come from mpirun on one worker (Open MPI 4.1 joins only what it
  // launched); a multi-node trial of several processes per node is a GPU trial (one process per
  // slot, torchrun-style ranks over NCCL).
  if (spec.resources.nodes > 1 && spec.resources.slots_per_trial > 1 && !TrialsUseCuda(spec)) {
    return Bad("resources.nodes",
               "a multi-node trial with slots_per_trial > 1 runs one process per GPU on worker "
               "daemons: it needs run.device cuda (CPU ranks come from mpirun on one worker; a "
               "coordinator run --backend slurm starts them over the allocation)");
  }
  return OkStatus();
}

Result<Json> LoadExperimentInlined(const std::string& path) {
  MAESTRO_ASSIGN_OR_RETURN(Json tree, LoadConfigFile(path));
  if (!tree.is_object()) return InvalidArgumentError("an experiment file is a mapping");
  const std::string base_dir = DirName(path);
  auto& fields = tree.as_object();
  if (auto config = fields.find("config"); config != fields.end()) {
    MAESTRO_ASSIGN_OR_RETURN(config->second, ReadTrainerConfig(config->second, "config", base_dir));
  }
  if (auto evaluations = fields.find("evaluations");
      evaluations != fields.end() && evaluations->second.is_array()) {
    for (auto& item : evaluations->second.as_array()) {
      if (!item.is_object()) continue;  // ParseExperiment says what is wrong
      auto& item_fields = item.as_object();
      if (auto config = item_fields.find("config"); config != item_fields.end()) {
        MAESTRO_ASSIGN_OR_RETURN(config->second,
                                 ReadTrainerConfig(config->second, "evaluations.config", base_dir));
      }
    }
  }
  MAESTRO_RETURN_IF_ERROR(ParseExperiment(tree).status());
  return tree;
}

Result<ExperimentSpec> LoadExperiment(const std::string& path) {
  MAESTRO_ASSIGN_OR_RETURN(Json tree, LoadExperimentInlined(path));
  return ParseExperiment(tree);
}

}  // namespace maestro::coordinator
