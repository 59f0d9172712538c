// The coordinator's RocksDB store on a real database: a whole grid is one batch, state survives
// reopening, idempotency keys and identities prevent twins, stale attempts are refused, the
// schema version is checked, and a writer killed with SIGKILL leaves only whole changes.
#include "maestro/coordinator/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "maestro/coordinator/lifecycle.h"
#include "maestro/coordinator/trial_record.h"
#include "maestro/shared/file_util.h"

namespace maestro::coordinator {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Appended piecewise: GCC 12's -Wrestrict misfires on chained operator+.
    dir_ = "/tmp/maestro_store_";
    dir_.append(std::to_string(::getpid()));
    dir_.append("_");
    dir_.append(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(dir_).ok()); }

  static std::vector<NewTrial> Grid(const std::string& prefix, int n) {
    std::vector<NewTrial> out;
    for (int i = 0; i < n; ++i) {
      std::string identity = prefix;
      identity.append(std::to_string(i));
      out.push_back({identity, Json(Json::Object{{"model.mask_ratio", i}})});
    }
    return out;
  }

  std::string dir_;
};

TEST_F(StoreTest, AGridIsStoredWholeAndSurvivesReopening) {
  {
    auto store = Store::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto created = (*store)->CreateExperiment(Json(Json::Object{{"name", "grid"}}), Grid("id", 4),
                                              "request-1");
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    EXPECT_EQ(created->id, 1);
    EXPECT_EQ(created->trials, (std::vector<int64_t>{1, 2, 3, 4}));
    // A second store on the same folder while this one is open: refused, not corrupted.
    EXPECT_EQ(Store::Open(dir_).status().code(), StatusCode::kUnavailable);
  }
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok());
  auto experiment = (*store)->Experiment(1);
  ASSERT_TRUE(experiment.ok());
  EXPECT_EQ(experiment->Find("name")->as_string(), "grid");
  EXPECT_EQ(experiment->Find("trials")->as_array().size(), 4u);
  auto trial = (*store)->Trial(3);
  ASSERT_TRUE(trial.ok());
  EXPECT_EQ(trial->Find("identity")->as_string(), "id2");
  EXPECT_EQ(trial->Find("state")->as_string(), "queued");
  const auto events = (*store)->Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].Find("kind")->as_string(), "experiment_created");
  EXPECT_EQ((*store)->Experiment(9).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, IdempotencyKeysAndIdentitiesPreventTwins) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok());
  auto first = (*store)->CreateExperiment(Json(Json::Object{{"name", "a"}}), Grid("id", 4), "k1");
  ASSERT_TRUE(first.ok());
  auto retried = (*store)->CreateExperiment(Json(Json::Object{{"name", "a"}}), Grid("id", 4), "k1");
  ASSERT_TRUE(retried.ok());
  EXPECT_TRUE(retried->existed);
  EXPECT_EQ(retried->id, first->id);
  EXPECT_EQ(retried->trials, first->trials);
  // The same grid extended by two cells, submitted anew: the four known cells are shared.
  auto extended = (*store)->CreateExperiment(Json(Json::Object{{"name", "b"}}), Grid("id", 6), "");
  ASSERT_TRUE(extended.ok());
  EXPECT_EQ(extended->id, 2);
  EXPECT_EQ(extended->reused, first->trials);
  EXPECT_EQ(extended->trials, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ((*store)->Experiments().size(), 2u);
  EXPECT_EQ((*store)->Events().size(), 2u) << "the retried request added no event";
}

TEST_F(StoreTest, ATransitionIsStoredWithItsEventInOneCommit) {
  {
    auto store = Store::Open(dir_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->CreateExperiment(Json(Json::Object{}), Grid("t", 1), "").ok());
    auto trial = TrialRecord::FromJson(*(*store)->Trial(1));
    ASSERT_TRUE(trial.ok()) << trial.status().ToString();
    EXPECT_EQ(trial->state, TrialState::kQueued);
    Change change;
    change.SetActor("w1");
    Lifecycle life(change, 1234);
    ASSERT_TRUE(life.Assign(*trial, {"w1"}, {}).ok());
    ASSERT_TRUE((*store)->Commit(std::move(change)).ok());
  }
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok());
  auto trial = TrialRecord::FromJson(*(*store)->Trial(1));
  ASSERT_TRUE(trial.ok());
  EXPECT_EQ(trial->state, TrialState::kAssigned);
  EXPECT_EQ(trial->attempt, 1);
  EXPECT_EQ(trial->worker, "w1");
  const auto events = (*store)->Events(2);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].Find("kind")->as_string(), "trial_assigned");
  EXPECT_EQ(events[0].Find("attempt")->as_int(), 1);
  EXPECT_EQ(events[0].Find("by")->as_string(), "w1");
  EXPECT_EQ((*store)->Trial(7).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, AnotherSchemaVersionIsRefused) {
  { ASSERT_TRUE(Store::Open(dir_).ok()); }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "meta/schema", "99").ok());
  }
  auto store = Store::Open(dir_);
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("schema 99"), std::string::npos);
}

TEST_F(StoreTest, AWriterKilledWithSigkillLeavesOnlyWholeExperiments) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // writes 40-trial experiments until killed
    auto store = Store::Open(dir_);
    if (!store.ok()) ::_exit(3);
    for (int i = 0;; ++i) {
      std::string prefix = "e";
      prefix.append(std::to_string(i));
      prefix.append("-");
      (void)(*store)->CreateExperiment(Json(Json::Object{{"name", i}}), Grid(prefix, 40), "");
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const auto experiments = (*store)->Experiments();
  EXPECT_GT(experiments.size(), 0u) << "the writer stored something before the kill";
  std::set<int64_t> trials;
  for (const auto& e : experiments) {
    ASSERT_EQ(e.Find("trials")->as_array().size(), 40u);
    for (const auto& t : e.Find("trials")->as_array()) {
      ASSERT_TRUE((*store)->Trial(t.as_int()).ok()) << "trial " << t.as_int();
      trials.insert(t.as_int());
    }
  }
  EXPECT_EQ(trials.size(), 40 * experiments.size());
  EXPECT_EQ((*store)->Events().size(), experiments.size());
  // Numbering carries on where the killed writer stopped.
  auto next = (*store)->CreateExperiment(Json(Json::Object{}), Grid("after-", 1), "");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->id, static_cast<int64_t>(experiments.size()) + 1);
  EXPECT_EQ(next->trials[0], static_cast<int64_t>(trials.size()) + 1);
}

}  // namespace
}  // namespace maestro::coordinator
