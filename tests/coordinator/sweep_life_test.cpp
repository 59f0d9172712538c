// A sweep's later life through the real scheduler and RocksDB store on simulated time:
// `experiment continue` (failed and canceled trials queued again with fresh budgets, once),
// a trial's detail (its stages' configs without placed keys) and the metric history read page
// by page (every record once, in order, whatever the page size).
#include <gtest/gtest.h>
#include <unistd.h>

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

class SweepLifeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/sweep-life-" + std::to_string(::getpid());
    ASSERT_TRUE(RemoveTree(dir_).ok());
    ASSERT_TRUE(MakeDirectories(dir_ + "/runs").ok());
    auto scheduler = OpenTestScheduler(dir_, &clock_);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status().ToString();
    scheduler_ = std::move(*scheduler);
    ASSERT_TRUE(scheduler_->RegisterDataset("fmnist", TestDataset(dir_), "test").ok());
    WorkerRegistration r;
    r.id = "w1";
    r.protocol_version = kWorkerProtocolVersion;
    r.slots = 1;
    r.cpu_cores = 4;
    r.memory_mb = 8192;
    auto registered = scheduler_->RegisterWorker(r);
    ASSERT_TRUE(registered.ok());
    session_ = registered->session;
    auto tree = LoadExperimentInlined(
        MAESTRO_SOURCE_DIR "/configs/experiments/fmnist_mask_ratio_x_decoder_depth.yaml");
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    auto created = scheduler_->CreateExperiment(*tree, "", "test");
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    experiment_ = created->id;
    trials_ = created->trials;
  }
  void TearDown() override {
    scheduler_.reset();
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }

  // One heartbeat of w1 holding `held`, reporting `step` of each: the assignments it got.
  std::vector<AttemptPlan> Beat(const std::vector<AttemptRef>& held, int64_t step) {
    std::vector<AttemptProgress> progress;
    for (const AttemptRef& ref : held) {
      progress.push_back({ref.trial, ref.attempt, step, 100, 1.0 / static_cast<double>(step), 0.01,
                          50, "pretrain"});
    }
    auto out = scheduler_->Heartbeat("w1", session_, progress, {}, held.empty() ? 1 : 0, held);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? out->assignments : std::vector<AttemptPlan>{};
  }

  Json TrialJson(int64_t id) {
    auto detail = scheduler_->TrialDetail(id);
    EXPECT_TRUE(detail.ok());
    return detail.ok() ? detail->first : Json();
  }

  std::string dir_;
  ManualClock clock_;
  std::unique_ptr<Scheduler> scheduler_;
  std::string session_;
  int64_t experiment_ = 0;
  std::vector<int64_t> trials_;
};

TEST_F(SweepLifeTest, TheHistoryIsReadPageByPageEveryRecordOnceInOrder) {
  auto assigned = Beat({}, 0);
  ASSERT_EQ(assigned.size(), 1u);
  const AttemptRef ref{assigned[0].trial, assigned[0].attempt};
  for (int64_t step = 1; step <= 7; ++step) Beat({ref}, step);
  auto all = scheduler_->MetricHistory(experiment_, 0, "", 1000);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->first.size(), 7u);
  EXPECT_EQ(all->second, "");
  for (int64_t page_size : {1, 2, 3, 7, 10000}) {
    std::vector<Json> read;
    std::string token;
    int pages = 0;
    do {
      auto page = scheduler_->MetricHistory(experiment_, 0, token, page_size);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      ASSERT_LE(page->first.size(), static_cast<size_t>(page_size));
      read.insert(read.end(), page->first.begin(), page->first.end());
      token = page->second;
      ASSERT_LT(++pages, 20);
    } while (!token.empty());
    ASSERT_EQ(read.size(), 7u) << "page size " << page_size;
    for (size_t i = 0; i < read.size(); ++i) {
      EXPECT_EQ(read[i].IntOr("step", -1), static_cast<int64_t>(i + 1));
      EXPECT_EQ(read[i].IntOr("trial", -1), ref.trial);
      EXPECT_EQ(read[i].IntOr("attempt", -1), ref.attempt);
      EXPECT_EQ(read[i].Dump(), all->first[i].Dump());
    }
  }
  auto one = scheduler_->MetricHistory(0, ref.trial, "", 1000);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->first.size(), 7u);
  EXPECT_EQ(scheduler_->MetricHistory(experiment_, 0, "7.x.1", 10).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_->MetricHistory(experiment_, 0, "1.2.3.4", 10).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_->MetricHistory(99, 0, "", 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->MetricHistory(0, 99, "", 10).status().code(), StatusCode::kNotFound);
}

TEST_F(SweepLifeTest, ContinueQueuesFailedAndCanceledTrialsOnceWithAFreshBudget) {
  auto assigned = Beat({}, 0);
  ASSERT_EQ(assigned.size(), 1u);
  const AttemptRef ref{assigned[0].trial, assigned[0].attempt};
  AttemptExit exit;
  exit.worker = "w1";
  exit.session = session_;
  exit.trial = ref.trial;
  exit.attempt = ref.attempt;
  exit.exit_code = kExitPermanentFailure;
  ASSERT_TRUE(scheduler_->ReportExit(exit).ok());
  EXPECT_EQ(TrialJson(ref.trial).StringOr("state"), "failed");
  // The rest canceled (queued ones cancel at once).
  ASSERT_TRUE(scheduler_->CancelExperiment(experiment_, "test").ok());
  auto continued = scheduler_->ContinueExperiment(experiment_, "test");
  ASSERT_TRUE(continued.ok()) << continued.status().ToString();
  EXPECT_EQ(*continued, static_cast<int64_t>(trials_.size()));
  for (int64_t id : trials_) {
    const Json t = TrialJson(id);
    EXPECT_EQ(t.StringOr("state"), "queued") << id;
    EXPECT_EQ(t.IntOr("restarts", -1), 0) << id;
  }
  // Queued already: nothing more to continue; the experiment is active again.
  auto again = scheduler_->ContinueExperiment(experiment_, "test");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  for (const Json& e : scheduler_->ListExperiments()) {
    if (e.IntOr("id", 0) == experiment_) {
      EXPECT_EQ(e.StringOr("state"), "active") << e.Dump();
    }
  }
  // The failed trial runs again from its own stage, as a new attempt.
  auto next = Beat({}, 0);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(scheduler_->ContinueExperiment(99, "test").status().code(), StatusCode::kNotFound);
}

TEST_F(SweepLifeTest, ExtendingARandomSearchAddsItsNextDrawsAndKeepsTheEarlierOnes) {
  auto tree = LoadExperimentInlined(MAESTRO_SOURCE_DIR
                                    "/configs/experiments/fmnist_mask_ratio_x_decoder_depth.yaml");
  ASSERT_TRUE(tree.ok());
  tree->as_object()["name"] = Json("random");
  tree->as_object()["searcher"] =
      Json(Json::Object{{"name", "random"}, {"max_trials", 3}, {"seed", 7}});
  tree->as_object()["hyperparameters"].as_object()["model.mask_ratio"] =
      Json(Json::Object{{"type", "double"}, {"minval", 0.5}, {"maxval", 0.9}});
  auto created = scheduler_->CreateExperiment(*tree, "", "test");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ASSERT_EQ(created->trials.size(), 3u);
  auto added = scheduler_->ExtendExperiment(created->id, 2, "test");
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  ASSERT_EQ(added->size(), 2u);
  // The same draws as a search of 5 from the start.
  Json five = *tree;
  five.as_object()["searcher"].as_object()["max_trials"] = Json(5);
  auto spec = ParseExperiment(five);
  ASSERT_TRUE(spec.ok());
  auto search = MakeSearchMethod(*spec);
  ASSERT_TRUE(search.ok());
  const auto draws = (*search)->Start();
  ASSERT_EQ(draws.size(), 5u);
  auto described = scheduler_->DescribeExperiment(created->id);
  ASSERT_TRUE(described.ok());
  ASSERT_EQ(described->second.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(described->second[i].Find("hparams")->Dump(), draws[i].hparams.Dump()) << i;
    EXPECT_EQ(described->second[i].StringOr("state"), "queued") << i;
  }
  EXPECT_EQ(described->first.Find("spec")->Find("searcher")->IntOr("max_trials", 0), 5);
  // A grid, nothing, or past the cap: refused, nothing changed.
  EXPECT_EQ(scheduler_->ExtendExperiment(experiment_, 1, "test").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->ExtendExperiment(created->id, 0, "test").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      scheduler_->ExtendExperiment(created->id, kMaxTrialsPerExperiment, "test").status().code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_->ExtendExperiment(99, 1, "test").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->DescribeExperiment(created->id)->second.size(), 5u);
}

TEST_F(SweepLifeTest, ATrialsDetailHasItsStagesConfigsWithoutPlacedKeys) {
  auto detail = scheduler_->TrialDetail(trials_[0]);
  ASSERT_TRUE(detail.ok());
  const Json& configs = detail->second;
  ASSERT_NE(configs.Find("pretrain"), nullptr) << configs.Dump();
  ASSERT_NE(configs.Find("linprobe"), nullptr) << configs.Dump();
  const Json* model = configs.Find("pretrain")->Find("model");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Find("mask_ratio")->Dump(),
            detail->first.Find("hparams")->Find("model.mask_ratio")->Dump());
  const Json* run = configs.Find("pretrain")->Find("run");
  EXPECT_TRUE(run == nullptr || run->Find("output_dir") == nullptr) << configs.Dump();
  EXPECT_EQ(scheduler_->TrialDetail(99).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace maestro::coordinator
