#include "maestro/coordinator/asha.h"

#include <algorithm>
#include <cmath>

namespace maestro::coordinator {

Result<std::vector<int64_t>> RungBudgets(const SearcherSpec& s) {
  if (s.min_budget <= 0) return InvalidArgumentError("searcher.min_budget: must be positive");
  if (s.max_budget < s.min_budget) {
    return InvalidArgumentError("searcher.max_budget: must be at least min_budget (" +
                                std::to_string(s.min_budget) + ")");
  }
  if (s.reduction_factor < 2) {
    return InvalidArgumentError("searcher.reduction_factor: must be at least 2");
  }
  std::vector<int64_t> budgets;
  for (int64_t b = s.min_budget; b < s.max_budget; b *= s.reduction_factor) {
    budgets.push_back(b);
    if (static_cast<int64_t>(budgets.size()) >= kMaxRungs || b > s.max_budget / s.reduction_factor)
      break;
  }
  budgets.push_back(s.max_budget);
  if (static_cast<int64_t>(budgets.size()) > kMaxRungs) {
    return InvalidArgumentError("searcher.min_budget: " + std::to_string(s.min_budget) + " to " +
                                std::to_string(s.max_budget) + " by a factor of " +
                                std::to_string(s.reduction_factor) + " makes more than " +
                                std::to_string(kMaxRungs) + " rungs");
  }
  return budgets;
}

BudgetBound WorstCaseBudget(const SearcherSpec& s, const std::vector<int64_t>& budgets) {
  BudgetBound out;
  int64_t reaching = s.max_trials, previous = 0;
  for (int64_t budget : budgets) {
    out.rungs.push_back({budget, reaching});
    out.total += reaching * (budget - previous);
    previous = budget;
    reaching /= s.reduction_factor;
  }
  out.without_stopping = s.max_trials * (budgets.empty() ? 0 : budgets.back());
  return out;
}

std::vector<int64_t> AshaPromotions(const SearcherSpec& s, int64_t rungs,
                                    const std::vector<AshaTrial>& trials) {
  std::vector<int64_t> out;
  const bool minimize = s.mode != "max";
  for (int64_t k = rungs - 2; k >= 0; --k) {
    std::vector<const AshaTrial*> reported;
    int64_t promoted = 0;
    for (const AshaTrial& t : trials) {
      if (static_cast<int64_t>(t.metrics.size()) > k) reported.push_back(&t);
      if (t.rung > k) ++promoted;
    }
    const auto quota = static_cast<int64_t>(reported.size()) / s.reduction_factor;
    if (promoted >= quota) continue;
    // Best first; a metric that is not a number ranks last; ties by trial id.
    auto key = [&](const AshaTrial* t) {
      const double m = t->metrics[static_cast<size_t>(k)];
      if (std::isnan(m)) return HUGE_VAL;
      return minimize ? m : -m;
    };
    std::stable_sort(reported.begin(), reported.end(), [&](const AshaTrial* a, const AshaTrial* b) {
      const double ka = key(a), kb = key(b);
      return ka != kb ? ka < kb : a->id < b->id;
    });
    for (int64_t i = 0; i < quota && promoted < quota; ++i) {
      const AshaTrial& t = *reported[static_cast<size_t>(i)];
      if (t.stopped && t.rung == k) {
        out.push_back(t.id);
        ++promoted;
      }
    }
  }
  return out;
}

Status CheckAshaMetric(const std::string& kind, const std::string& metric) {
  if (kind == "pretrain") {
    if (metric == "heldout_masked_loss") return OkStatus();
    return InvalidArgumentError(
        "searcher.metric: a pretraining reports heldout_masked_loss at its rungs, not '" + metric +
        "'");
  }
  if (kind == "finetune" || kind == "linprobe") {
    if (metric == "top1" || metric == "top5" || metric == "loss") return OkStatus();
    return InvalidArgumentError("searcher.metric: a " + kind +
                                " reports top1, top5 or loss (held out) at its rungs, not '" +
                                metric + "'");
  }
  return InvalidArgumentError(
      "searcher.name: asha runs single-stage experiments (pretrain, finetune, linprobe), not " +
      kind);
}

const char* AshaStopKey(const SearcherSpec& s) {
  return s.unit == "epochs" ? "optim.max_epochs" : "optim.max_steps";
}
const char* AshaLengthKey(const SearcherSpec& s) {
  return s.unit == "epochs" ? "optim.epochs" : "optim.steps";
}

}  // namespace maestro::coordinator
