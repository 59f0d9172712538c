// ASHA, asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
// Hyperparameter Tuning"), as maestro runs it: every trial of the experiment is drawn up
// front (as a random search draws them) and queued to train to the first rung's budget; a
// trial that reaches a rung reports the metric there and is stopped with its checkpoint; the
// rung promotes its best trials to the next rung, where they resume exactly where they
// stopped (their learning-rate schedule spans max_budget from the start, so a promoted trial
// ends bitwise equal to one trained straight through).
//
// Rungs: budgets min_budget * eta^k while below max_budget, then max_budget (eta: the
// reduction factor). Promotion (budget-preserving): rung k promotes at most
// floor(R_k / eta) trials in all, R_k being the trials that reported at rung k so far, each
// time the best not yet promoted among the top floor(R_k / eta); a promoted trial runs before
// any trial of a lower rung. So at most floor(N_k / eta) trials ever reach rung k+1, which
// bounds the budget (WorstCaseBudget). The paper's rule may promote a late, better arrival past
// that quota; ours waits until the quota grows.
//
// This is the searcher's whole logic, without state of its own: its state is the trials'
// records (their rung and the metrics they reported), stored with them, so a restarted
// coordinator decides exactly as before. Pure functions; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/coordinator/experiment.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

inline constexpr int64_t kMaxRungs = 12;

// The rungs' budgets, ascending, the last max_budget. INVALID_ARGUMENT naming the key for
// settings that do not make a ladder (checked by ParseExperiment too).
Result<std::vector<int64_t>> RungBudgets(const SearcherSpec& searcher);

// One rung of the worst case.
struct RungBound {
  int64_t budget = 0;  // the rung's budget (steps or epochs)
  int64_t trials = 0;  // at most this many trials reach it
};
struct BudgetBound {
  std::vector<RungBound> rungs;
  // The sum over rungs of trials x (budget - the previous rung's budget): a promoted trial
  // resumes, so it pays only the difference. Attempts rerun after failures are not counted.
  int64_t total = 0;
  int64_t without_stopping = 0;  // every trial trained to max_budget
};
BudgetBound WorstCaseBudget(const SearcherSpec& searcher, const std::vector<int64_t>& budgets);

// What the searcher sees of one trial.
struct AshaTrial {
  int64_t id = 0;
  int64_t rung = 0;             // the rung it trains to (or reached)
  std::vector<double> metrics;  // its metric at rungs 0, 1, ... as reported
  bool stopped = false;         // stopped by the searcher at a rung (promotable)
};

// The trials to promote now (ids, each to its rung + 1), most urgent first: every rung, top
// first, promotes while its quota allows. A trial is promotable at rung k when it is stopped,
// its rung is k and it reported there. `mode`: "min" or "max".
std::vector<int64_t> AshaPromotions(const SearcherSpec& searcher, int64_t rungs,
                                    const std::vector<AshaTrial>& trials);

// The metric a kind of experiment reports at rungs, and the one named by `metric` checked
// against it: pretraining reports heldout_masked_loss (its eval.images held-out images),
// fine-tuning and linear probing top1, top5 and loss (held-out). INVALID_ARGUMENT naming
// searcher.metric otherwise.
Status CheckAshaMetric(const std::string& kind, const std::string& metric);

// The config keys an ASHA trial's attempt sets to stop at `budget` (unit steps: optim.max_steps;
// epochs: optim.max_epochs), and the ones its trial config sets so the schedule spans
// max_budget (steps: optim.steps; epochs: optim.epochs).
const char* AshaStopKey(const SearcherSpec& searcher);
const char* AshaLengthKey(const SearcherSpec& searcher);

}  // namespace maestro::coordinator
