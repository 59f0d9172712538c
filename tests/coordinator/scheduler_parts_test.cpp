// The scheduler's parts on their own: the worker pool as an attempt backend (launches wait for
// the next heartbeat, an answer that never arrived is noticed, a released gang is stopped) and
// the plan of an attempt (the config without placed keys, the placement, resume, device).
#include <gtest/gtest.h>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/placement.h"
#include "maestro/coordinator/worker_pool.h"
#include "maestro/shared/config_tree.h"

namespace maestro::coordinator {
namespace {

AttemptPlan Plan(int64_t trial, int64_t attempt, int64_t node_rank = 0) {
  AttemptPlan plan;
  plan.trial = trial;
  plan.attempt = attempt;
  plan.node_rank = node_rank;
  return plan;
}

WorkerState& Start(WorkerPool& pool, const std::string& id, int64_t now_ms) {
  WorkerRegistration r;
  r.id = id;
  r.slots = 2;
  bool replaced = false;
  return pool.StartSession(r, "s-" + id, now_ms, replaced);
}

TEST(WorkerPoolTest, ALaunchWaitsForEachNodesNextHeartbeat) {
  WorkerPool pool;
  WorkerState& w1 = Start(pool, "w1", 0);
  WorkerState& w2 = Start(pool, "w2", 0);
  pool.Launch({"w1", "w2"}, {Plan(7, 1, 0), Plan(7, 1, 1)});
  EXPECT_TRUE(w1.running.count({7, 1}) && w2.running.count({7, 1}));
  EXPECT_TRUE(w1.Heard({7, 1}) && w2.Heard({7, 1}));
  EXPECT_TRUE(pool.Beat(w1, {}, 10).empty());
  HeartbeatOutcome out;
  pool.Deliver(w1, out);
  ASSERT_EQ(out.assignments.size(), 1u);
  EXPECT_EQ(out.assignments[0].node_rank, 0);
  HeartbeatOutcome again;
  pool.Deliver(w1, again);
  EXPECT_TRUE(again.assignments.empty()) << "delivered once";
  // w1's next heartbeat does not hold it: that answer never arrived.
  const auto lost = pool.Beat(w1, {}, 20);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0], (AttemptRef{7, 1}));
  EXPECT_TRUE(pool.Beat(w1, {}, 30).empty()) << "reported once";
  // w2 holds its share at the heartbeat after the one that carried it.
  pool.Beat(w2, {}, 10);
  HeartbeatOutcome w2_out;
  pool.Deliver(w2, w2_out);
  ASSERT_EQ(w2_out.assignments.size(), 1u);
  EXPECT_EQ(w2_out.assignments[0].node_rank, 1);
  EXPECT_TRUE(pool.Beat(w2, {{7, 1}}, 20).empty());
}

TEST(WorkerPoolTest, AReleasedGangIsStoppedAndItsUndeliveredShareDropped) {
  WorkerPool pool;
  WorkerState& w1 = Start(pool, "w1", 0);
  WorkerState& w2 = Start(pool, "w2", 0);
  pool.Launch({"w1", "w2"}, {Plan(7, 1, 0), Plan(7, 1, 1)});
  pool.Release({"w1", "w2"}, {7, 1});
  EXPECT_FALSE(w1.running.count({7, 1}) || w2.running.count({7, 1}));
  HeartbeatOutcome out;
  pool.Deliver(w2, out);
  EXPECT_TRUE(out.assignments.empty());
  ASSERT_EQ(out.kill.size(), 1u);
  EXPECT_EQ(out.kill[0], (AttemptRef{7, 1}));
}

TEST(WorkerPoolTest, SessionsAndSilence) {
  WorkerPool pool;
  pool.Expect("w1", {3, 2}, 100);
  WorkerState* expected = pool.Find("w1");
  ASSERT_NE(expected, nullptr);
  EXPECT_TRUE(expected->alive && !expected->confirmed);
  EXPECT_EQ(pool.Session("w1", ""), nullptr) << "an expected worker has no session yet";
  EXPECT_EQ(pool.Silent(1000, 1000).size(), 0u);
  EXPECT_EQ(pool.Silent(1101, 1000).size(), 1u);
  WorkerState& w1 = Start(pool, "w1", 2000);
  EXPECT_EQ(pool.Session("w1", "s-w1"), &w1);
  EXPECT_EQ(pool.Session("w1", "other"), nullptr);
  pool.MarkLost(w1);
  EXPECT_EQ(pool.Session("w1", "s-w1"), nullptr);
  EXPECT_TRUE(pool.Silent(99999, 1).empty()) << "a lost worker is not silent again";
}

ExperimentSpec Pipeline() {
  auto spec = ParseExperiment(*Json::Parse(
      R"({"name": "p", "kind": "pipeline", "dataset": "d", )"
      R"("config": {"model": {"preset": "mae_vit_tiny_fmnist"}, "run": {"device": "cuda"}, )"
      R"("data": {"path": "/etc", "source": "fashion-mnist"}}, )"
      R"("evaluations": [{"kind": "linprobe", "config": {"classify": {"num_classes": 10, )"
      R"("pretrained": "none"}}}]})"));
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : ExperimentSpec{};
}

TEST(PlacementTest, AnAttemptsPlanSaysWhereApartFromWhat) {
  const ExperimentSpec spec = Pipeline();
  TrialRecord trial;
  trial.id = 4;
  trial.attempt = 2;
  trial.stage_runs = 2;
  const Json dataset(Json::Object{{"path", "/data/d"}});
  auto plan = PlanAttempt(trial, spec, dataset, {"/runs", 5000});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->job, "pretrain");
  EXPECT_TRUE(plan->resume);
  EXPECT_EQ(plan->device, "cuda");
  EXPECT_EQ(plan->grace_period_ms, 5000);
  EXPECT_EQ(plan->placement.data_path, "/data/d");
  EXPECT_EQ(plan->placement.output_dir, "/runs/trial-4/pretrain");
  EXPECT_EQ(plan->placement.checkpoint_dir, "/runs/trial-4/pretrain/checkpoints");
  EXPECT_EQ(FindConfigValue(plan->config, "data.path"), nullptr);
  EXPECT_EQ(FindConfigValue(plan->config, "data.source"), nullptr);
  // The probe stage starts from the pretraining's final checkpoint, or cannot start.
  trial.stage = 1;
  trial.stage_runs = 1;
  auto probe = PlanAttempt(trial, spec, dataset, {"/runs", 5000});
  EXPECT_EQ(probe.status().code(), StatusCode::kFailedPrecondition);
  trial.results.as_object()["pretrain"] = Json(Json::Object{{"checkpoint", "/runs/ckpt"}});
  probe = PlanAttempt(trial, spec, dataset, {"/runs", 5000});
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  EXPECT_EQ(probe->job, "linprobe");
  EXPECT_FALSE(probe->resume);
  EXPECT_EQ(probe->placement.pretrained, "/runs/ckpt");
  EXPECT_EQ(probe->placement.output_dir, "/runs/trial-4/linprobe");
  EXPECT_EQ(FindConfigValue(probe->config, "classify.pretrained"), nullptr);
  trial.stage = 2;
  EXPECT_EQ(PlanAttempt(trial, spec, dataset, {"/runs", 0}).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(PlacementTest, FitsCountsWhatIsTaken) {
  WorkerState worker;
  worker.slots = 2;
  worker.cpu_cores = 4;
  worker.memory_mb = 0;  // not reported: not counted
  Resources wanted;
  wanted.slots_per_trial = 1;
  wanted.cpu_cores = 2;
  wanted.memory_mb = 999999;
  EXPECT_TRUE(Fits(worker, {0, 0, 0}, wanted));
  EXPECT_TRUE(Fits(worker, {1, 2, 0}, wanted));
  EXPECT_FALSE(Fits(worker, {1, 3, 0}, wanted)) << "cores";
  EXPECT_FALSE(Fits(worker, {2, 0, 0}, wanted)) << "slots";
}

}  // namespace
}  // namespace maestro::coordinator
