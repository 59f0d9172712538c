#include "maestro/coordinator/searcher.h"

#include <cmath>

#include "maestro/coordinator/asha.h"
#include "maestro/shared/config_tree.h"
#include "maestro/shared/rng.h"
#include "maestro/shared/sha256.h"
#include "maestro/shared/train_config.h"

namespace maestro::coordinator {
namespace {

// FNV-1a: a stable 64-bit name for a key (std::hash is not stable across builds).
uint64_t KeyHash(const std::string& key) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// The grid values of one hyperparameter.
Result<std::vector<Json>> GridValues(const HyperParameter& h) {
  if (h.type == "const") return std::vector<Json>{h.val};
  if (h.type == "categorical") return h.vals;
  if (h.count <= 0) {
    return InvalidArgumentError("hyperparameters." + h.key + ": a grid needs `count` for a " +
                                h.type + " range");
  }
  std::vector<Json> out;
  for (int64_t i = 0; i < h.count; ++i) {
    const double t = h.count == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(h.count - 1);
    const double x = h.minval + t * (h.maxval - h.minval);
    if (h.type == "int") {
      const Json v(static_cast<int64_t>(std::llround(x)));
      if (out.empty() || out.back().as_int() != v.as_int()) out.push_back(v);
    } else if (h.type == "double") {
      out.emplace_back(x);
    } else {
      out.emplace_back(std::pow(h.base, x));
    }
  }
  return out;
}

Json RandomValue(const HyperParameter& h, uint64_t seed, int64_t ordinal) {
  CounterRng rng(HashKey({seed, static_cast<uint64_t>(ordinal), KeyHash(h.key)}));
  if (h.type == "const") return h.val;
  if (h.type == "categorical") return h.vals[static_cast<size_t>(rng.Below(h.vals.size()))];
  if (h.type == "int") {
    const auto lo = static_cast<int64_t>(h.minval), hi = static_cast<int64_t>(h.maxval);
    return Json(lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(hi - lo + 1))));
  }
  const double x = rng.Uniform(h.minval, h.maxval);
  return h.type == "double" ? Json(x) : Json(std::pow(h.base, x));
}

class GridSearch : public SearchMethod {
 public:
  explicit GridSearch(std::vector<TrialRequest> trials) : trials_(std::move(trials)) {}
  std::vector<TrialRequest> Start() override { return trials_; }
  SearchActions OnTrialEvent(const TrialEvent&, const std::vector<AshaTrial>&) override {
    return {};
  }

 private:
  std::vector<TrialRequest> trials_;
};

class RandomSearch : public SearchMethod {
 public:
  explicit RandomSearch(const ExperimentSpec& spec) : spec_(spec) {}
  std::vector<TrialRequest> Start() override {
    std::vector<TrialRequest> out;
    for (int64_t i = 0; i < spec_.searcher.max_trials; ++i) {
      Json::Object hparams;
      for (const auto& h : spec_.hyperparameters)
        hparams.emplace(h.key, RandomValue(h, spec_.searcher.seed, i));
      TrialRequest trial;
      trial.ordinal = i;
      trial.hparams = Json(std::move(hparams));
      out.push_back(std::move(trial));
    }
    return out;
  }
  SearchActions OnTrialEvent(const TrialEvent&, const std::vector<AshaTrial>&) override {
    return {};
  }

 protected:
  ExperimentSpec spec_;
};

// ASHA (asha.h): random draws; a trial that reaches a rung below the top stops there, and each
// event promotes what the rungs' quotas allow.
class AshaSearch : public RandomSearch {
 public:
  AshaSearch(const ExperimentSpec& spec, int64_t rungs) : RandomSearch(spec), rungs_(rungs) {}
  SearchActions OnTrialEvent(const TrialEvent& event,
                             const std::vector<AshaTrial>& trials) override {
    SearchActions out;
    std::vector<AshaTrial> view = trials;
    if (event.kind == TrialEvent::Kind::kRungReached && event.rung + 1 < rungs_) {
      out.stop = true;
      for (AshaTrial& t : view) {
        if (t.id == event.trial) t.stopped = true;
      }
    }
    out.resume = AshaPromotions(spec_.searcher, rungs_, view);
    return out;
  }

 private:
  int64_t rungs_;
};

Result<std::string> ResultHashOf(const Json& tree, const std::string& job,
                                 const std::string& what) {
  auto config = engine::ParseTrainConfig(tree, job);
  if (!config.ok()) return config.status().WithContext(what);
  return config->ResultHash();
}

}  // namespace

Result<std::unique_ptr<SearchMethod>> MakeSearchMethod(const ExperimentSpec& spec,
                                                       int64_t max_trials) {
  if (spec.searcher.name == "random" || spec.searcher.name == "asha") {
    if (spec.searcher.max_trials > max_trials) {
      return InvalidArgumentError(
          "searcher.max_trials: " + std::to_string(spec.searcher.max_trials) + " is above " +
          std::to_string(max_trials) + " trials per experiment");
    }
    if (spec.searcher.name == "random")
      return std::unique_ptr<SearchMethod>(new RandomSearch(spec));
    MAESTRO_ASSIGN_OR_RETURN(std::vector<int64_t> budgets, RungBudgets(spec.searcher));
    return std::unique_ptr<SearchMethod>(
        new AshaSearch(spec, static_cast<int64_t>(budgets.size())));
  }
  // The grid's size from the counts alone, before any value is made: a count of 1e9 costs
  // nothing to refuse.
  int64_t cells = 1;
  for (const auto& h : spec.hyperparameters) {
    int64_t n = 1;
    if (h.type == "categorical") {
      n = static_cast<int64_t>(h.vals.size());
    } else if (h.type != "const") {
      n = h.count;
      if (h.type == "int" && h.maxval - h.minval + 1 < static_cast<double>(n)) {
        n = static_cast<int64_t>(h.maxval - h.minval + 1);  // equal rounded values merge
      }
    }
    if (n > max_trials || (n > 0 && cells > max_trials / n)) {
      return InvalidArgumentError("hyperparameters." + h.key + ": the grid would have more than " +
                                  std::to_string(max_trials) + " cells");
    }
    cells *= std::max<int64_t>(n, 1);
  }
  std::vector<std::vector<Json>> axes;
  cells = 1;
  for (const auto& h : spec.hyperparameters) {
    MAESTRO_ASSIGN_OR_RETURN(std::vector<Json> values, GridValues(h));
    cells *= static_cast<int64_t>(values.size());
    axes.push_back(std::move(values));
  }
  std::vector<TrialRequest> trials;
  trials.reserve(static_cast<size_t>(cells));
  std::vector<size_t> at(axes.size(), 0);
  for (int64_t ordinal = 0; ordinal < cells; ++ordinal) {
    Json::Object hparams;
    for (size_t k = 0; k < axes.size(); ++k)
      hparams.emplace(spec.hyperparameters[k].key, axes[k][at[k]]);
    TrialRequest trial;
    trial.ordinal = ordinal;
    trial.hparams = Json(std::move(hparams));
    trials.push_back(std::move(trial));
    for (size_t k = axes.size(); k-- > 0;) {  // the last key varies fastest
      if (++at[k] < axes[k].size()) break;
      at[k] = 0;
    }
  }
  return std::unique_ptr<SearchMethod>(new GridSearch(std::move(trials)));
}

Result<Json> TrialConfig(const ExperimentSpec& spec, const Json& hparams) {
  Json tree = spec.config;
  for (const auto& [key, value] : hparams.as_object()) {
    MAESTRO_RETURN_IF_ERROR(SetConfigValue(tree, key, value).WithContext("hyperparameters"));
  }
  if (spec.checkpoint_interval_steps > 0) {
    MAESTRO_RETURN_IF_ERROR(
        SetConfigValue(tree, "checkpoint.interval_steps", Json(spec.checkpoint_interval_steps)));
  }
  if (spec.searcher.name == "asha") {
    // The schedule spans max_budget from the first rung on; each attempt stops at its rung.
    MAESTRO_RETURN_IF_ERROR(
        SetConfigValue(tree, AshaLengthKey(spec.searcher), Json(spec.searcher.max_budget)));
    if (spec.kind == "pretrain") {
      const Json* images = FindConfigValue(tree, "eval.images");
      if (images == nullptr) {
        MAESTRO_RETURN_IF_ERROR(SetConfigValue(tree, "eval.images", Json(kAshaHeldOutImages)));
      } else if (images->is_int() && images->as_int() == 0) {
        return InvalidArgumentError(
            "eval.images: 0 turns off the held-out masked-patch loss an asha searcher ranks "
            "pretraining trials by (leave it out for " +
            std::to_string(kAshaHeldOutImages) + " images)");
      }
    }
  }
  if (spec.checkpoint_keep_last >= 0) {
    MAESTRO_RETURN_IF_ERROR(
        SetConfigValue(tree, "checkpoint.keep_last", Json(spec.checkpoint_keep_last)));
  }
  return tree;
}

Result<std::string> TrialIdentity(const ExperimentSpec& spec, const Json& hparams) {
  MAESTRO_ASSIGN_OR_RETURN(Json config, TrialConfig(spec, hparams));
  MAESTRO_ASSIGN_OR_RETURN(std::string train_hash,
                           ResultHashOf(config, spec.train_job(), "trial config"));
  Json::Array evaluations;
  for (size_t i = 0; i < spec.evaluations.size(); ++i) {
    const EvaluationSpec& eval = spec.evaluations[i];
    Json tree = eval.config;
    // The trial's checkpoint, known at run time; the hash records only that there is one.
    MAESTRO_RETURN_IF_ERROR(SetConfigValue(tree, "classify.pretrained", Json("trial-checkpoint"))
                                .WithContext("evaluations[" + std::to_string(i) + "].config"));
    MAESTRO_ASSIGN_OR_RETURN(
        std::string hash,
        ResultHashOf(tree, eval.kind, "evaluations[" + std::to_string(i) + "].config"));
    evaluations.emplace_back(Json::Object{{"kind", eval.kind}, {"result_hash", hash}});
  }
  Json identity(Json::Object{{"kind", spec.kind},
                             {"dataset", spec.dataset},
                             {"result_hash", train_hash},
                             {"evaluations", Json(std::move(evaluations))}});
  return Sha256Hex(identity.Dump());
}

}  // namespace maestro::coordinator
