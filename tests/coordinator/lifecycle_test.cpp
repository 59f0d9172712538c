// A trial's lifecycle: every state x every transition against an expected matrix written out
// here (not read from the table under test), the stored record's schema, the documented
// diagram, and seeded random sequences of registrations, heartbeats, exits, losses and
// coordinator restarts driven through the real scheduler and RocksDB store on simulated time,
// checking the lifecycle's invariants after every step.
#include "maestro/coordinator/lifecycle.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <random>
#include <set>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/scheduler.h"
#include "maestro/coordinator/store.h"
#include "maestro/coordinator/trial_record.h"
#include "maestro/shared/clock.h"
#include "maestro/shared/exit_status.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/version.h"
#include "test_scheduler.h"

namespace maestro::coordinator {
namespace {

using S = TrialState;
using T = TrialTransition;

constexpr T kAllTransitions[] = {
    T::kQueue, T::kAssign,  T::kStart, T::kAdopt,  T::kCompleteStage, T::kComplete, T::kFail,
    T::kRetry, T::kPreempt, T::kLose,  T::kCancel, T::kStop,          T::kResume};

// The allowed moves, written out by hand: transition -> {from state -> to state}.
const std::map<T, std::map<S, S>>& ExpectedMoves() {
  static const std::map<T, std::map<S, S>> moves = {
      {T::kQueue, {{S::kFailed, S::kQueued}, {S::kCanceled, S::kQueued}}},
      {T::kAssign, {{S::kQueued, S::kAssigned}}},
      {T::kStart, {{S::kAssigned, S::kRunning}}},
      {T::kAdopt,
       {{S::kQueued, S::kRunning}, {S::kAssigned, S::kRunning}, {S::kRunning, S::kRunning}}},
      {T::kCompleteStage, {{S::kAssigned, S::kQueued}, {S::kRunning, S::kQueued}}},
      {T::kComplete, {{S::kAssigned, S::kCompleted}, {S::kRunning, S::kCompleted}}},
      {T::kFail, {{S::kAssigned, S::kFailed}, {S::kRunning, S::kFailed}}},
      {T::kRetry, {{S::kAssigned, S::kQueued}, {S::kRunning, S::kQueued}}},
      {T::kPreempt, {{S::kAssigned, S::kQueued}, {S::kRunning, S::kQueued}}},
      {T::kLose, {{S::kAssigned, S::kQueued}, {S::kRunning, S::kQueued}}},
      {T::kCancel,
       {{S::kQueued, S::kCanceled},
        {S::kAssigned, S::kCanceled},
        {S::kRunning, S::kCanceled},
        {S::kStopped, S::kCanceled}}},
      {T::kStop,
       {{S::kAssigned, S::kStopped}, {S::kRunning, S::kStopped}, {S::kCanceled, S::kStopped}}},
      {T::kResume, {{S::kStopped, S::kQueued}}},
  };
  return moves;
}

Status Apply(Lifecycle& life, TrialRecord& trial, T transition) {
  switch (transition) {
    case T::kQueue:
      return life.Queue(trial, trial.experiment, "again");
    case T::kAssign:
      return life.Assign(trial, {"w1"}, {});
    case T::kStart:
      return life.Start(trial, "w1");
    case T::kAdopt:
      return life.Adopt(trial, "w1");
    case T::kCompleteStage:
      return life.CompleteStage(trial, "pretrain", Json(Json::Object{}));
    case T::kComplete:
      return life.Complete(trial, "pretrain", Json(Json::Object{}), "w1");
    case T::kFail:
      return life.Fail(trial, "crash", "exit 1", "exit 1");
    case T::kRetry:
      return life.Retry(trial, "crash", "exit 1", 5);
    case T::kPreempt:
      return life.Preempt(trial, "preempted");
    case T::kLose:
      return life.Lose(trial, "never reached w1");
    case T::kCancel:
      return life.Cancel(trial, "");
    case T::kStop:
      return life.Stop(trial, "paused");
    case T::kResume:
      return life.Resume(trial);
  }
  return InternalError("unknown transition");
}

TrialRecord RecordIn(S state) {
  TrialRecord trial;
  trial.id = 7;
  trial.experiment = 2;
  trial.identity = "abc";
  trial.state = state;
  trial.attempt = 3;
  trial.worker = "w1";
  trial.restarts = 1;
  return trial;
}

TEST(LifecycleTest, EveryStateTimesEveryTransitionIsAppliedOrRefusedClearly) {
  int applied = 0, refused = 0;
  for (S state : kAllTrialStates) {
    for (T transition : kAllTransitions) {
      const std::string name(RuleOf(transition).name);
      const std::string from(TrialStateName(state));
      SCOPED_TRACE(name + " from " + from);
      TrialRecord trial = RecordIn(state);
      const Json before = trial.ToJson();
      Change change;
      Lifecycle life(change, 5000);
      const Status status = Apply(life, trial, transition);
      const auto& moves = ExpectedMoves().at(transition);
      auto move = moves.find(state);
      if (move == moves.end()) {
        ++refused;
        EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
        EXPECT_NE(status.message().find("cannot " + name + " a trial that is " + from),
                  std::string::npos)
            << status.message();
        EXPECT_NE(status.message().find("trial 7"), std::string::npos);
        EXPECT_EQ(trial.ToJson(), before) << "a refused transition changed the record";
        EXPECT_TRUE(change.empty()) << "a refused transition wrote something";
        continue;
      }
      ++applied;
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_EQ(trial.state, move->second);
      EXPECT_EQ(trial.attempt, transition == T::kAssign ? 4 : 3);
      ASSERT_EQ(change.events().size(), 1u);
      const Json& event = change.events()[0];
      EXPECT_EQ(event.Find("kind")->as_string(), std::string(RuleOf(transition).event));
      EXPECT_EQ(event.Find("trial")->as_int(), 7);
      EXPECT_EQ(event.Find("attempt")->as_int(), trial.attempt);
      EXPECT_EQ(event.Find("time_ms")->as_int(), 5000);
      if (trial.state == S::kQueued) {
        EXPECT_EQ(trial.queued_at_ms, 5000);
      }
    }
  }
  EXPECT_EQ(applied + refused, 7 * 13);
  EXPECT_EQ(applied, 27);
}

TEST(LifecycleTest, TheTableIsTheExpectedMatrix) {
  ASSERT_EQ(TransitionTable().size(), std::size(kAllTransitions));
  for (T transition : kAllTransitions) {
    const TransitionRule& rule = RuleOf(transition);
    EXPECT_EQ(rule.transition, transition);
    const auto& moves = ExpectedMoves().at(transition);
    EXPECT_EQ(rule.from.size(), moves.size()) << rule.name;
    for (S from : rule.from) {
      ASSERT_TRUE(moves.count(from)) << rule.name << " from " << TrialStateName(from);
      EXPECT_EQ(moves.at(from), rule.to) << rule.name;
    }
  }
}

TEST(LifecycleTest, RetryNeverSpendsMoreThanTheBudget) {
  TrialRecord trial = RecordIn(S::kRunning);
  trial.restarts = 2;
  Change change;
  Lifecycle life(change, 1);
  const Status spent = life.Retry(trial, "crash", "exit 1", 2);
  EXPECT_EQ(spent.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(spent.message().find("2 of max_restarts 2 spent"), std::string::npos);
  EXPECT_EQ(trial.state, S::kRunning);
  EXPECT_TRUE(change.empty());
  ASSERT_TRUE(life.Retry(trial, "crash", "exit 1", 3).ok());
  EXPECT_EQ(trial.restarts, 3);
  ASSERT_EQ(trial.failures.size(), 1u);
  EXPECT_EQ(trial.failures[0].cause_kind, "crash");
  EXPECT_EQ(trial.failures[0].attempt, 3);
}

TEST(LifecycleTest, AdoptionAfterALossGivesTheRestartBack) {
  TrialRecord trial = RecordIn(S::kQueued);
  Change change;
  Lifecycle life(change, 1);
  ASSERT_TRUE(life.Adopt(trial, "w1").ok());
  EXPECT_EQ(trial.restarts, 0);
  EXPECT_EQ(change.events()[0].Find("after")->as_string(), "worker lost");
  TrialRecord running = RecordIn(S::kRunning);
  ASSERT_TRUE(life.Adopt(running, "w1").ok());
  EXPECT_EQ(running.restarts, 1) << "adopting a current attempt charges and returns nothing";
}

TEST(TrialRecordTest, ALandedRecordIsReadAndWrittenBackUnchanged) {
  // As the coordinator stored trials before the typed record (field for field).
  auto stored = Json::Parse(
      R"({"attempt":2,"experiment":1,"failures":[{"attempt":1,"cause":"exit 1","cause_kind":)"
      R"("crash","stage":0,"time_ms":17}],"gang":["w1","w2"],"hparams":{"model.mask_ratio":0.75},)"
      R"("id":4,"identity":"f00","queued_at_ms":12,"restarts":1,"results":{"pretrain":{"final":)"
      R"(1.5}},"stage":1,"stage_runs":1,"state":"running","worker":"w1","cancel_requested":true,)"
      R"("cause":"x","completed_ms":99,"note_from_a_newer_version":[1]})");
  ASSERT_TRUE(stored.ok());
  auto record = TrialRecord::FromJson(*stored);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(record->state, S::kRunning);
  EXPECT_EQ(record->gang, (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ(record->Workers(), record->gang);
  EXPECT_TRUE(record->cancel_requested);
  ASSERT_EQ(record->failures.size(), 1u);
  EXPECT_EQ(record->failures[0].time_ms, 17);
  EXPECT_EQ(record->ToJson(), *stored);
  // A record as the store creates it: defaults written out, nothing else.
  TrialRecord fresh;
  fresh.id = 1;
  auto back = TrialRecord::FromJson(fresh.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToJson(), fresh.ToJson());
  EXPECT_EQ(back->Workers(), (std::vector<std::string>{""}));
}

TEST(TrialRecordTest, ABadRecordIsRefusedNamingTheField) {
  auto refused = [](const char* text) {
    auto json = Json::Parse(text);
    EXPECT_TRUE(json.ok()) << text;
    auto record = TrialRecord::FromJson(*json);
    EXPECT_EQ(record.status().code(), StatusCode::kInvalidArgument) << text;
    return record.status().message();
  };
  EXPECT_EQ(refused(R"({"experiment":1,"state":"queued"})"), "trial.id: missing or not an integer");
  EXPECT_EQ(refused(R"({"id":3,"state":"queued"})"), "trial 3.experiment: missing");
  EXPECT_EQ(refused(R"({"id":3,"experiment":1,"state":"paused"})"),
            "trial 3.state: unknown state 'paused'");
  EXPECT_EQ(refused(R"({"id":3,"experiment":1,"state":"queued","attempt":"2"})"),
            "trial 3.attempt: not an integer");
  EXPECT_EQ(refused(R"({"id":3,"experiment":1,"state":"queued","gang":[1]})"),
            "trial 3.gang: not a list of worker ids");
  EXPECT_EQ(refused(R"({"id":3,"experiment":1,"state":"queued","failures":[{"stage":"x"}]})"),
            "trial 3.failures[].stage: not an integer");
  EXPECT_EQ(refused(R"([])"), "trial: not a JSON object");
}

TEST(TrialRecordTest, StateNamesRoundTrip) {
  std::set<std::string> names;
  for (S state : kAllTrialStates) {
    names.emplace(TrialStateName(state));
    EXPECT_EQ(ParseTrialState(TrialStateName(state)), state);
  }
  EXPECT_EQ(names.size(), 7u);
  EXPECT_FALSE(ParseTrialState("Queued").has_value());
  EXPECT_TRUE(IsActive(S::kAssigned) && IsActive(S::kRunning) && !IsActive(S::kStopped));
  EXPECT_TRUE(IsFinished(S::kCanceled) && !IsFinished(S::kStopped) && !IsFinished(S::kQueued));
}

TEST(LifecycleTest, TheDocumentedDiagramIsTheTable) {
  auto doc = ReadFile(MAESTRO_SOURCE_DIR "/docs/orchestration.md");
  ASSERT_TRUE(doc.ok());
  const std::string marker = "<!-- lifecycle diagram: RenderLifecycleDiagram() -->\n```mermaid\n";
  const size_t start = doc->find(marker);
  ASSERT_NE(start, std::string::npos) << "docs/orchestration.md lost its diagram marker";
  const size_t from = start + marker.size();
  const size_t end = doc->find("```", from);
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(doc->substr(from, end - from), RenderLifecycleDiagram())
      << "docs/orchestration.md's diagram differs from lifecycle.cpp's table; paste:\n"
      << RenderLifecycleDiagram();
}

// ---------------------------------------------------------------------------------------------
// The scheduler driven by random events on simulated time.

class LifecyclePropertyTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  static constexpr int64_t kTimeoutMs = 1000;
  static constexpr int64_t kMaxRestarts = 2;

  struct SimWorker {
    std::string session;
    std::set<AttemptRef> trainers;  // what it runs (its trainers, alive)
  };

  void SetUp() override {
    dir_ = "/tmp/maestro_lifecycle_";
    dir_.append(std::to_string(::getpid()));
    dir_.append("_");
    dir_.append(std::to_string(GetParam()));
    ASSERT_TRUE(RemoveTree(dir_).ok());
    ASSERT_TRUE(MakeDirectories(dir_ + "/runs").ok());
    ASSERT_TRUE(MakeDirectories(dir_ + "/data").ok());
    Reopen();
    ASSERT_TRUE(scheduler_->RegisterDataset("fmnist", TestDataset(dir_), "test").ok());
    for (const char* id : {"w1", "w2", "w3"}) Register(id, false);
    auto tree = LoadExperimentInlined(
        MAESTRO_SOURCE_DIR "/configs/experiments/fmnist_mask_ratio_x_decoder_depth.yaml");
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    tree->as_object()["max_restarts"] = Json(kMaxRestarts);
    tree->as_object()["max_concurrent_trials"] = Json(4);
    auto created = scheduler_->CreateExperiment(*tree, "", "test");
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    experiment_ = created->id;
    ASSERT_EQ(created->trials.size(), 6u);
  }
  void TearDown() override {
    scheduler_.reset();
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }

  void Reopen() {
    scheduler_.reset();  // RocksDB's lock is released before the new coordinator opens it
    SchedulerOptions options;
    options.heartbeat_interval_ms = 100;
    options.worker_timeout_ms = kTimeoutMs;
    auto scheduler = OpenTestScheduler(dir_, &clock_, options);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status().ToString();
    scheduler_ = std::move(*scheduler);
  }

  // Registers `id`, listing what it runs (or, when `restarted`, nothing: its trainers died).
  void Register(const std::string& id, bool restarted) {
    SimWorker& w = workers_[id];
    if (restarted) w.trainers.clear();
    WorkerRegistration r;
    r.id = id;
    r.build = "test";
    r.protocol_version = kWorkerProtocolVersion;
    r.slots = 1;
    r.cpu_cores = 2;
    r.memory_mb = 4096;
    r.running.assign(w.trainers.begin(), w.trainers.end());
    auto out = scheduler_->RegisterWorker(r);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    w.session = out->session;
    for (const AttemptRef& ref : out->kill) w.trainers.erase(ref);
  }

  void Beat(const std::string& id, std::mt19937& rng) {
    SimWorker& w = workers_[id];
    std::vector<AttemptProgress> progress;
    for (const AttemptRef& ref : w.trainers) {
      if (rng() % 2) progress.push_back({ref.trial, ref.attempt, 10, 100, 0.5, 0.1, 5, "pretrain"});
    }
    std::vector<AttemptRef> held(w.trainers.begin(), w.trainers.end());
    auto out = scheduler_->Heartbeat(id, w.session, progress, {}, 1, held);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    if (out->reregister) {
      Register(id, false);
      return;
    }
    for (const AttemptRef& ref : out->kill) w.trainers.erase(ref);
    for (const AttemptPlan& a : out->assignments) {
      ASSERT_FALSE(completed_.count(a.trial)) << "completed trial " << a.trial << " assigned again";
      // An answer lost on the way (the worker never hears of it) now and then.
      if (rng() % 8 != 0) w.trainers.insert({a.trial, a.attempt});
    }
  }

  void Exit(const std::string& id, std::mt19937& rng) {
    SimWorker& w = workers_[id];
    if (w.trainers.empty()) return;
    auto it = w.trainers.begin();
    std::advance(it, rng() % w.trainers.size());
    const AttemptRef ref = *it;
    w.trainers.erase(it);
    AttemptExit exit;
    exit.worker = id;
    exit.session = w.session;
    exit.trial = ref.trial;
    exit.attempt = ref.attempt;
    static const int kCodes[] = {kExitCompleted,
                                 kExitCompleted,
                                 kExitCompleted,
                                 1,
                                 kExitPermanentFailure,
                                 kExitPreempted,
                                 -1};
    exit.exit_code = kCodes[rng() % std::size(kCodes)];
    exit.signal = exit.exit_code < 0 ? 9 : 0;
    exit.result_json = Json(Json::Object{{"checkpoint", dir_ + "/runs/ckpt"}}).Dump();
    const Status s = scheduler_->ReportExit(exit);
    // Refusals are part of the protocol (a stale session or attempt); never another error.
    ASSERT_TRUE(s.ok() || s.code() == StatusCode::kAborted ||
                s.code() == StatusCode::kFailedPrecondition)
        << s.ToString();
  }

  // The trials as stored, by id.
  std::map<int64_t, TrialRecord> Trials() {
    std::map<int64_t, TrialRecord> out;
    auto described = scheduler_->DescribeExperiment(experiment_);
    EXPECT_TRUE(described.ok());
    for (const Json& t : described->second) {
      auto record = TrialRecord::FromJson(t);
      EXPECT_TRUE(record.ok()) << record.status().ToString();
      if (record.ok()) out[record->id] = *record;
    }
    return out;
  }

  void CheckInvariants(const std::map<int64_t, TrialRecord>& before, const std::string& step) {
    SCOPED_TRACE(step);
    const auto after = Trials();
    // Every state change has its event, of a transition that ends in the new state.
    std::map<int64_t, std::vector<std::string>> kinds;
    for (const Json& event : scheduler_->Events(next_event_)) {
      next_event_ = event.Find("seq")->as_int() + 1;
      const Json* trial = event.Find("trial");
      if (trial != nullptr) kinds[trial->as_int()].push_back(event.Find("kind")->as_string());
    }
    for (const auto& [id, trial] : after) {
      EXPECT_GE(trial.restarts, 0) << "trial " << id;
      EXPECT_LE(trial.restarts, kMaxRestarts) << "trial " << id;
      const TrialRecord& was = before.at(id);
      if (was.state == S::kCompleted) {
        EXPECT_EQ(trial.state, S::kCompleted) << "trial " << id << " left completed";
        EXPECT_EQ(trial.attempt, was.attempt) << "completed trial " << id << " ran again";
      }
      if (trial.state == S::kCompleted) completed_.insert(id);
      if (trial.state == was.state && trial.attempt == was.attempt) continue;
      bool explained = false;
      for (const std::string& kind : kinds[id]) {
        for (const TransitionRule& rule : TransitionTable()) {
          explained |= rule.event == kind && rule.to == trial.state;
        }
      }
      EXPECT_TRUE(explained) << "trial " << id << " moved " << TrialStateName(was.state) << " -> "
                             << TrialStateName(trial.state) << " without its event";
    }
    // At most one current attempt per trial: the workers' attempts are the trials' current
    // ones, and only active trials have one.
    std::map<int64_t, std::set<int64_t>> held;
    for (const Json& w : scheduler_->ListWorkers()) {
      if (w.Find("state")->as_string() == "lost") continue;
      for (const Json& r : w.Find("running")->as_array()) {
        held[r.Find("trial")->as_int()].insert(r.Find("attempt")->as_int());
      }
    }
    for (const auto& [trial, attempts] : held) {
      EXPECT_EQ(attempts.size(), 1u) << "trial " << trial << " has several current attempts";
      const TrialRecord& record = after.at(trial);
      EXPECT_TRUE(IsActive(record.state))
          << "a worker holds " << TrialStateName(record.state) << " trial " << trial;
      EXPECT_EQ(*attempts.begin(), record.attempt) << "trial " << trial;
    }
  }

  std::string dir_;
  ManualClock clock_;
  std::unique_ptr<Scheduler> scheduler_;
  std::map<std::string, SimWorker> workers_;
  std::set<int64_t> completed_;
  int64_t experiment_ = 0;
  int64_t next_event_ = 0;
};

TEST_P(LifecyclePropertyTest, RandomEventSequencesKeepTheInvariants) {
  std::mt19937 rng(GetParam());
  const std::vector<std::string> ids = {"w1", "w2", "w3"};
  std::map<std::string, int> steps_by_kind;
  for (int step = 0; step < 400; ++step) {
    auto before = Trials();
    const std::string& id = ids[rng() % ids.size()];
    const uint32_t dice = rng() % 100;
    std::string kind;
    if (dice < 45) {
      kind = "heartbeat";
      Beat(id, rng);
    } else if (dice < 75) {
      kind = "exit";
      Exit(id, rng);
    } else if (dice < 85) {
      kind = "time";
      clock_.Advance(static_cast<int64_t>(rng() % 3) * kTimeoutMs * 6 / 10);
      scheduler_->Tick();
    } else if (dice < 92) {
      kind = "worker restart";
      Register(id, true);
    } else if (dice < 97) {
      kind = "register again";
      Register(id, false);
    } else {
      kind = "coordinator restart";
      Reopen();
      before = Trials();  // events written at load (none expected) count from here
    }
    ++steps_by_kind[kind];
    CheckInvariants(before, "step " + std::to_string(step) + " (" + kind + ")");
    if (HasFailure()) return;
  }
  // The sequence went somewhere: trials finished, and every kind of step happened.
  EXPECT_EQ(steps_by_kind.size(), 6u);
  int64_t finished = 0;
  for (const auto& [id, trial] : Trials()) finished += IsFinished(trial.state) ? 1 : 0;
  EXPECT_GT(finished, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, LifecyclePropertyTest, ::testing::Range(1u, 21u));

}  // namespace
}  // namespace maestro::coordinator
