// ASHA (asha.h): the rung ladder and its worst-case budget by hand, promotions against
// hand-computed sequences (asynchronous arrivals, a trial failing at a rung, the quota that
// waits for more results), and the whole searcher through the real scheduler and RocksDB store
// on simulated time: each attempt's stop at its rung's budget, stops and promotions, promoted
// trials ahead of new ones, and the same decisions after the coordinator is reopened.
#include "maestro/coordinator/asha.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/scheduler.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/coordinator/store.h"
#include "maestro/shared/clock.h"
#include "maestro/shared/exit_status.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/version.h"
#include "test_scheduler.h"

namespace maestro::coordinator {
namespace {

SearcherSpec Asha(int64_t min_budget, int64_t max_budget, int64_t eta, int64_t trials = 9,
                  const std::string& mode = "min") {
  SearcherSpec s;
  s.name = "asha";
  s.metric = "heldout_masked_loss";
  s.mode = mode;
  s.min_budget = min_budget;
  s.max_budget = max_budget;
  s.reduction_factor = eta;
  s.max_trials = trials;
  return s;
}

TEST(AshaRungs, BudgetsClimbByTheReductionFactorAndEndAtMaxBudget) {
  EXPECT_EQ(*RungBudgets(Asha(1, 9, 3)), (std::vector<int64_t>{1, 3, 9}));
  EXPECT_EQ(*RungBudgets(Asha(50, 450, 3)), (std::vector<int64_t>{50, 150, 450}));
  EXPECT_EQ(*RungBudgets(Asha(10, 100, 4)), (std::vector<int64_t>{10, 40, 100}));
  EXPECT_EQ(*RungBudgets(Asha(7, 7, 2)), (std::vector<int64_t>{7}));
  EXPECT_EQ(RungBudgets(Asha(1, 2048, 2))->size(), static_cast<size_t>(kMaxRungs));
  EXPECT_EQ(RungBudgets(Asha(1, 4096, 2)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RungBudgets(Asha(1, int64_t{1} << 62, 3)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RungBudgets(Asha(0, 9, 3)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RungBudgets(Asha(10, 9, 3)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RungBudgets(Asha(1, 9, 1)).status().code(), StatusCode::kInvalidArgument);
}

TEST(AshaRungs, TheWorstCaseBudgetCountsOnlyWhatPromotedTrialsAdd) {
  // 9 trials: at most 9, 3, 1 reach rungs 1, 3, 9: 9x1 + 3x(3-1) + 1x(9-3) = 21 of 81.
  const SearcherSpec s = Asha(1, 9, 3, 9);
  BudgetBound bound = WorstCaseBudget(s, *RungBudgets(s));
  ASSERT_EQ(bound.rungs.size(), 3u);
  EXPECT_EQ(bound.rungs[0].trials, 9);
  EXPECT_EQ(bound.rungs[1].trials, 3);
  EXPECT_EQ(bound.rungs[2].trials, 1);
  EXPECT_EQ(bound.total, 21);
  EXPECT_EQ(bound.without_stopping, 81);
  // 10 trials, factor 4, 10/40/100: 10x10 + 2x30 + 0x60 = 160 of 1000.
  const SearcherSpec t = Asha(10, 100, 4, 10);
  bound = WorstCaseBudget(t, *RungBudgets(t));
  EXPECT_EQ(bound.total, 160);
  EXPECT_EQ(bound.without_stopping, 1000);
}

// A small model of the scheduler's side: trials that report, stop and get promoted.
class Ladder {
 public:
  Ladder(SearcherSpec spec, int64_t rungs) : spec_(std::move(spec)), rungs_(rungs) {}
  void Add(int64_t id) { trials_[id] = AshaTrial{id, 0, {}, false}; }
  // `id` reports `metric` at its rung and stops; the promotions, applied.
  std::vector<int64_t> Report(int64_t id, double metric) {
    AshaTrial& t = trials_.at(id);
    t.metrics.resize(static_cast<size_t>(t.rung));
    t.metrics.push_back(metric);
    t.stopped = t.rung + 1 < rungs_;
    return Promote();
  }
  // `id` failed on its way to its rung: it reports nothing.
  std::vector<int64_t> Fail(int64_t id) {
    trials_.at(id).stopped = false;
    return Promote();
  }
  const AshaTrial& operator[](int64_t id) const { return trials_.at(id); }

 private:
  std::vector<int64_t> Promote() {
    std::vector<AshaTrial> view;
    for (const auto& [id, t] : trials_) view.push_back(t);
    const auto promoted = AshaPromotions(spec_, rungs_, view);
    for (int64_t id : promoted) {
      ++trials_.at(id).rung;
      trials_.at(id).stopped = false;
    }
    return promoted;
  }
  SearcherSpec spec_;
  int64_t rungs_;
  std::map<int64_t, AshaTrial> trials_;
};

using Ids = std::vector<int64_t>;

TEST(AshaPromotion, AsynchronousArrivalsAgainstHandComputedPromotions) {
  Ladder l(Asha(1, 9, 3), 3);  // lower is better
  for (int64_t id = 1; id <= 9; ++id) l.Add(id);
  EXPECT_EQ(l.Report(1, 0.9), Ids{});   // rung 0: 1 result, quota 0
  EXPECT_EQ(l.Report(2, 0.5), Ids{});   // 2 results, quota 0
  EXPECT_EQ(l.Report(3, 0.7), Ids{2});  // 3 results, quota 1: the best, 2
  EXPECT_EQ(l.Report(2, 0.45), Ids{});  // rung 1: 1 result
  EXPECT_EQ(l.Report(4, 0.3), Ids{});   // rung 0: 4 results, quota 1, used (2)
  EXPECT_EQ(l.Report(5, 0.8), Ids{});   // 5 results
  // 6 results, quota 2: the top two are 4 (0.3) and 2 (0.5); 2 went up already: 4 goes.
  EXPECT_EQ(l.Report(6, 0.6), Ids{4});
  EXPECT_EQ(l.Report(4, 0.25), Ids{});  // rung 1: 2 results
  EXPECT_EQ(l.Report(7, 0.4), Ids{});   // rung 0: 7 results, quota 2, used
  // 8 beats everyone at rung 0 but the quota (2) is used: it waits for the ninth result.
  EXPECT_EQ(l.Report(8, 0.2), Ids{});
  EXPECT_TRUE(l[8].stopped);
  // 9 results, quota 3: top three 9 (0.1), 8 (0.2), 4 (0.3); 4 went up: 9 first, then no more.
  EXPECT_EQ(l.Report(9, 0.1), Ids{9});
  EXPECT_EQ(l[8].rung, 0) << "one promotion per free place in the quota";
  // Rung 1 reaches 3 results with 9's: quota 1, the best is 9 itself, promoted at once.
  EXPECT_EQ(l.Report(9, 0.15), Ids{9});
  EXPECT_EQ(l[9].rung, 2);
  EXPECT_EQ(l.Report(9, 0.12), Ids{});  // the top rung: it completes
  EXPECT_FALSE(l[9].stopped);
  EXPECT_EQ(l[8].rung, 0);
}

TEST(AshaPromotion, AFailedTrialNeitherReportsNorCountsAndHigherRungsGoFirst) {
  Ladder l(Asha(1, 9, 3, 9, "max"), 3);  // higher is better
  for (int64_t id = 1; id <= 7; ++id) l.Add(id);
  EXPECT_EQ(l.Fail(1), Ids{});  // failed before rung 0: no result
  EXPECT_EQ(l.Report(2, 10), Ids{});
  EXPECT_EQ(l.Report(3, 30), Ids{});
  EXPECT_EQ(l.Fail(4), Ids{});         // still 2 results: quota 0
  EXPECT_EQ(l.Report(5, 20), Ids{3});  // 3 results: the highest, 3
  // 3 fails at rung 1 after its promotion: it still counts against rung 0's quota.
  EXPECT_EQ(l.Fail(3), Ids{});
  EXPECT_EQ(l.Report(6, 50), Ids{});  // 4 results, quota 1, used by 3
  EXPECT_EQ(l.Report(7, 5), Ids{});   // 5 results
  EXPECT_EQ(l[6].rung, 0);
  // Several rungs due at once (a coordinator continuing a sweep, say): the higher rung first.
  // Rung 0 has 6 results, quota 3, two promoted (3 and 4): the best unpromoted, 1, goes; rung 1
  // has 2 results at factor 2, quota 1, none promoted: its best, 3, goes first.
  const std::vector<AshaTrial> due = {{1, 0, {5}, true},    {2, 0, {1}, true},
                                      {3, 1, {3, 7}, true}, {4, 1, {2, 6}, true},
                                      {5, 0, {4}, false},   {6, 0, {0}, true}};
  EXPECT_EQ(AshaPromotions(Asha(1, 4, 2, 6, "max"), 3, due), (Ids{3, 1}));
}

TEST(AshaPromotion, TheSearchMethodStopsBelowTheTopRungAndNamesItsPromotions) {
  ExperimentSpec spec;
  spec.kind = "pretrain";
  spec.searcher = Asha(1, 9, 3, 3);
  auto method = MakeSearchMethod(spec);
  ASSERT_TRUE(method.ok()) << method.status().ToString();
  EXPECT_EQ((*method)->Start().size(), 3u);
  std::vector<AshaTrial> trials = {{1, 0, {0.5}, true}, {2, 0, {0.4}, true}, {3, 0, {0.6}, false}};
  SearchActions a = (*method)->OnTrialEvent({TrialEvent::Kind::kRungReached, 3, 0, 0.6}, trials);
  EXPECT_TRUE(a.stop);
  EXPECT_EQ(a.resume, Ids{2});
  trials = {{1, 2, {0.5, 0.4, 0.3}, false}};
  a = (*method)->OnTrialEvent({TrialEvent::Kind::kRungReached, 1, 2, 0.3}, trials);
  EXPECT_FALSE(a.stop) << "the top rung completes";
  EXPECT_TRUE(a.resume.empty());
}

TEST(AshaSpec, ExperimentFilesAreCheckedAndDefaultsFilled) {
  auto parse = [](const std::string& searcher, const std::string& kind = "pretrain",
                  const std::string& extra = "") {
    auto tree = Json::Parse(R"({"name": "a", "kind": ")" + kind +
                            R"(", "dataset": "fmnist", "searcher": )" + searcher + extra + "}");
    EXPECT_TRUE(tree.ok());
    return ParseExperiment(*tree);
  };
  auto ok = parse(R"({"name": "asha", "max_trials": 9, "min_budget": 10, "max_budget": 90,
                      "reduction_factor": 3})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->searcher.metric, "heldout_masked_loss");
  EXPECT_EQ(ok->searcher.mode, "min");
  EXPECT_EQ(ok->searcher.unit, "steps");
  auto fine = parse(R"({"name": "asha", "max_trials": 9, "min_budget": 1, "max_budget": 9,
                        "unit": "epochs"})",
                    "finetune");
  ASSERT_TRUE(fine.ok()) << fine.status().ToString();
  EXPECT_EQ(fine->searcher.metric, "top1");
  EXPECT_EQ(fine->searcher.mode, "max");
  EXPECT_EQ(fine->searcher.reduction_factor, 4);
  struct Bad {
    std::string searcher, kind, extra, key;
  };
  const std::vector<Bad> bad = {
      {R"({"name": "asha", "min_budget": 1, "max_budget": 9})", "pretrain", "",
       "searcher.max_trials"},
      {R"({"name": "asha", "max_trials": 3, "max_budget": 9})", "pretrain", "",
       "searcher.min_budget"},
      {R"({"name": "asha", "max_trials": 3, "min_budget": 1, "max_budget": 9, "metric": "top1"})",
       "pretrain", "", "searcher.metric"},
      {R"({"name": "asha", "max_trials": 3, "min_budget": 1, "max_budget": 9, "mode": "up"})",
       "pretrain", "", "searcher.mode"},
      {R"({"name": "asha", "max_trials": 3, "min_budget": 1, "max_budget": 9, "unit": "hours"})",
       "pretrain", "", "searcher.unit"},
      {R"({"name": "asha", "max_trials": 3, "min_budget": 9, "max_budget": 1})", "pretrain", "",
       "searcher.max_budget"},
      {R"({"name": "asha", "max_trials": 3, "min_budget": 1, "max_budget": 9})", "pipeline",
       R"(, "evaluations": [{"kind": "linprobe"}])", "searcher.name"},
      {R"({"name": "asha", "max_trials": 3, "min_budget": 1, "max_budget": 9})", "pretrain",
       R"(, "hyperparameters": {"optim.epochs": [1, 2]})", "hyperparameters.optim.epochs"},
      {R"({"name": "grid", "metric": "top1"})", "pretrain", "", "searcher"},
  };
  for (const Bad& b : bad) {
    auto parsed = parse(b.searcher, b.kind, b.extra);
    ASSERT_FALSE(parsed.ok()) << b.searcher;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(b.key), std::string::npos)
        << parsed.status().message() << " should name " << b.key;
  }
}

TEST(AshaSpec, TrialConfigsSpanMaxBudgetAndMeasureHeldOutImages) {
  auto spec_of = [](const std::string& config) {
    auto tree = Json::Parse(R"({"name": "a", "kind": "pretrain", "dataset": "fmnist", )"
                            R"("config": )" +
                            config +
                            R"(, "searcher": {"name": "asha", "max_trials": 3, "min_budget": 10, )"
                            R"("max_budget": 90, "reduction_factor": 3}})");
    EXPECT_TRUE(tree.ok());
    auto spec = ParseExperiment(*tree);
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    return *spec;
  };
  auto config = TrialConfig(spec_of("{}"), Json(Json::Object{}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->Find("optim")->Find("steps")->as_int(), 90);
  EXPECT_EQ(config->Find("eval")->Find("images")->as_int(), kAshaHeldOutImages);
  config = TrialConfig(spec_of(R"({"eval": {"images": 200}})"), Json(Json::Object{}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->Find("eval")->Find("images")->as_int(), 200);
  // 0 would turn off the measure the rungs rank by: refused, not a trial failing at rung 0.
  config = TrialConfig(spec_of(R"({"eval": {"images": 0}})"), Json(Json::Object{}));
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("eval.images: 0 turns off"), std::string::npos)
      << config.status().ToString();
}

// The searcher through the scheduler: a pretraining ASHA of 9 trials, rungs 1 / 3 / 9 steps,
// played with the same metrics as the hand-computed sequence above.
class AshaSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/asha-" + std::to_string(::getpid());
    ASSERT_TRUE(RemoveTree(dir_).ok());
    ASSERT_TRUE(MakeDirectories(dir_ + "/runs").ok());
    Open();
    ASSERT_TRUE(scheduler_->RegisterDataset("fmnist", TestDataset(dir_), "test").ok());
    Register();
    auto tree = Json::Parse(R"({
        "name": "asha", "kind": "pretrain", "dataset": "fmnist",
        "config": {"model": {"preset": "mae_vit_tiny_fmnist"}, "optim": {"warmup_epochs": 0}},
        "hyperparameters": {"optim.blr": {"type": "log", "minval": -4, "maxval": -2}},
        "searcher": {"name": "asha", "max_trials": 9, "seed": 3, "min_budget": 1,
                     "max_budget": 9, "reduction_factor": 3},
        "resources": {"slots_per_trial": 1}})");
    ASSERT_TRUE(tree.ok());
    auto created = scheduler_->CreateExperiment(*tree, "", "test");
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    experiment_ = created->id;
    trials_ = created->trials;
    ASSERT_EQ(trials_.size(), 9u);
  }
  void TearDown() override {
    scheduler_.reset();
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }
  void Open() {
    auto scheduler = OpenTestScheduler(dir_, &clock_);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status().ToString();
    scheduler_ = std::move(*scheduler);
  }
  void Register() {
    WorkerRegistration r;
    r.id = "w1";
    r.protocol_version = kWorkerProtocolVersion;
    r.slots = 1;
    auto registered = scheduler_->RegisterWorker(r);
    ASSERT_TRUE(registered.ok());
    session_ = registered->session;
  }
  // The next assignment of the one-slot worker: (trial ordinal 1..9, its stop, resume).
  struct Next {
    int64_t ordinal = 0, stop = 0;
    bool resume = false;
    AttemptPlan plan;
  };
  Next Assign() {
    auto out = scheduler_->Heartbeat("w1", session_, {}, {}, 1, {});
    EXPECT_TRUE(out.ok());
    if (!out.ok() || out->assignments.size() != 1) return {};
    const AttemptPlan& plan = out->assignments[0];
    Next next;
    next.ordinal = Ordinal(plan.trial);
    next.stop = plan.config.Find("optim")->IntOr("max_steps", -1);
    next.resume = plan.resume;
    next.plan = plan;
    return next;
  }
  int64_t Ordinal(int64_t id) const {
    for (size_t i = 0; i < trials_.size(); ++i) {
      if (trials_[i] == id) return static_cast<int64_t>(i) + 1;
    }
    return 0;
  }
  // The running attempt of `next` completes at `steps` with `metric` (or exits with `code`).
  void Exit(const Next& next, int64_t steps, double metric, int code = kExitCompleted) {
    ExitWith(
        next,
        Json(Json::Object{
                 {"optimizer_steps", steps},
                 {"final", Json(Json::Object{{"step", steps}, {"heldout_masked_loss", metric}})}})
            .Dump(),
        code);
  }
  void ExitWith(const Next& next, const std::string& result_json, int code = kExitCompleted) {
    AttemptExit exit;
    exit.worker = "w1";
    exit.session = session_;
    exit.trial = next.plan.trial;
    exit.attempt = next.plan.attempt;
    exit.exit_code = code;
    exit.result_json = result_json;
    ASSERT_TRUE(scheduler_->ReportExit(exit).ok());
  }
  Json TrialJson(int64_t ordinal) {
    auto detail = scheduler_->TrialDetail(trials_[static_cast<size_t>(ordinal - 1)]);
    EXPECT_TRUE(detail.ok());
    return detail.ok() ? detail->first : Json();
  }
  // Runs the next assignment, checks it is `ordinal` to `stop` steps, reports `metric`.
  void Play(int64_t ordinal, int64_t stop, double metric) {
    const Next next = Assign();
    ASSERT_EQ(next.ordinal, ordinal);
    ASSERT_EQ(next.stop, stop) << "trial " << ordinal;
    EXPECT_EQ(next.resume, stop > 1) << "a promoted trial resumes from its checkpoint";
    const Json* optim = next.plan.config.Find("optim");
    EXPECT_EQ(optim->IntOr("steps", -1), 9) << "the schedule spans max_budget";
    EXPECT_EQ(next.plan.config.Find("eval")->IntOr("images", -1), kAshaHeldOutImages);
    Exit(next, stop, metric);
  }

  std::string dir_;
  ManualClock clock_;
  std::unique_ptr<Scheduler> scheduler_;
  std::string session_;
  int64_t experiment_ = 0;
  std::vector<int64_t> trials_;
};

TEST_F(AshaSchedulerTest, StopsPromotesAndResumesAsTheHandComputedLadderAcrossARestart) {
  Play(1, 1, 0.9);
  EXPECT_EQ(TrialJson(1).StringOr("state"), "stopped");
  Play(2, 1, 0.5);
  Play(3, 1, 0.7);
  EXPECT_EQ(TrialJson(2).StringOr("state"), "queued");
  EXPECT_EQ(TrialJson(2).IntOr("rung", -1), 1);
  Play(2, 3, 0.45);  // promoted: ahead of trial 4
  Play(4, 1, 0.3);
  Play(5, 1, 0.8);
  Play(6, 1, 0.6);  // promotes 4
  // The coordinator restarts here: the searcher's state is the trials' stored records.
  scheduler_.reset();
  Open();
  Register();
  EXPECT_EQ(TrialJson(4).StringOr("state"), "queued");
  EXPECT_EQ(TrialJson(4).IntOr("rung", -1), 1);
  Play(4, 3, 0.25);
  Play(7, 1, 0.4);
  Play(8, 1, 0.2);
  EXPECT_EQ(TrialJson(8).StringOr("state"), "stopped") << "the quota waits";
  Play(9, 1, 0.1);   // promotes 9
  Play(9, 3, 0.15);  // rung 1's third result: 9 goes on at once
  Play(9, 9, 0.12);  // the top rung: completed
  const Json nine = TrialJson(9);
  EXPECT_EQ(nine.StringOr("state"), "completed");
  ASSERT_NE(nine.Find("rung_metrics"), nullptr);
  const Json::Array& metrics = nine.Find("rung_metrics")->as_array();
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_EQ(metrics[0].as_double(), 0.1);
  EXPECT_EQ(metrics[1].as_double(), 0.15);
  EXPECT_EQ(metrics[2].as_double(), 0.12);
  EXPECT_EQ(Assign().ordinal, 0) << "nothing left to run";
  std::map<std::string, int64_t> states;
  for (int64_t ordinal = 1; ordinal <= 9; ++ordinal) ++states[TrialJson(ordinal).StringOr("state")];
  EXPECT_EQ(states["stopped"], 8);
  EXPECT_EQ(states["completed"], 1);
  for (const Json& e : scheduler_->ListExperiments()) {
    if (e.IntOr("id", 0) == experiment_) {
      EXPECT_EQ(e.StringOr("state"), "completed") << e.Dump();
    }
  }
  // Each promotion is one trial_resumed event; no trial was promoted twice to one rung.
  std::map<int64_t, int64_t> resumed;
  for (const Json& event : scheduler_->Events()) {
    if (event.StringOr("kind") == "trial_resumed") ++resumed[event.IntOr("trial", 0)];
  }
  EXPECT_EQ(resumed,
            (std::map<int64_t, int64_t>{{trials_[1], 1}, {trials_[3], 1}, {trials_[8], 2}}));
}

TEST_F(AshaSchedulerTest, AResultWithoutTheMetricOrAtAnotherStepFailsTheTrial) {
  Next first = Assign();
  ASSERT_EQ(first.ordinal, 1);
  ExitWith(first, R"({"optimizer_steps": 1, "final": {"top1": 50}})");
  EXPECT_EQ(TrialJson(1).StringOr("state"), "failed");
  EXPECT_NE(TrialJson(1).StringOr("cause").find("heldout_masked_loss"), std::string::npos);
  Next second = Assign();
  ASSERT_EQ(second.ordinal, 2);
  Exit(second, 5, 0.3);
  EXPECT_EQ(TrialJson(2).StringOr("state"), "failed");
  EXPECT_NE(TrialJson(2).StringOr("cause").find("optimizer step 5"), std::string::npos);
}

TEST_F(AshaSchedulerTest, CanceledStoppedTrialsAreStoppedAgainWhenContinuedAndExtendDrawsMore) {
  Play(1, 1, 0.9);
  Play(2, 1, 0.5);
  ASSERT_TRUE(scheduler_->CancelExperiment(experiment_, "test").ok());
  EXPECT_EQ(TrialJson(1).StringOr("state"), "canceled");
  auto continued = scheduler_->ContinueExperiment(experiment_, "test");
  ASSERT_TRUE(continued.ok()) << continued.status().ToString();
  EXPECT_EQ(*continued, 7) << "the 7 that never reached a rung are queued again";
  EXPECT_EQ(TrialJson(1).StringOr("state"), "stopped");
  EXPECT_EQ(TrialJson(2).StringOr("state"), "stopped");
  Play(3, 1, 0.7);  // 3 results: 2 is promoted, as without the cancel
  EXPECT_EQ(TrialJson(2).StringOr("state"), "queued");
  auto added = scheduler_->ExtendExperiment(experiment_, 3, "test");
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->size(), 3u);
  for (int64_t id : *added) {
    auto detail = scheduler_->TrialDetail(id);
    ASSERT_TRUE(detail.ok());
    EXPECT_EQ(detail->first.StringOr("state"), "queued");
    EXPECT_EQ(detail->first.IntOr("rung", 0), 0);
  }
}

}  // namespace
}  // namespace maestro::coordinator
