#include "maestro/coordinator/lifecycle.h"

#include <algorithm>

namespace maestro::coordinator {
namespace {

using S = TrialState;
using T = TrialTransition;

const std::vector<TransitionRule>& Rules() {
  static const std::vector<TransitionRule> rules = {
      {T::kQueue, "queue", {S::kFailed, S::kCanceled}, S::kQueued, "trial_requeued"},
      {T::kAssign, "assign", {S::kQueued}, S::kAssigned, "trial_assigned"},
      {T::kStart, "start", {S::kAssigned}, S::kRunning, "trial_running"},
      {T::kAdopt, "adopt", {S::kQueued, S::kAssigned, S::kRunning}, S::kRunning, "trial_adopted"},
      {T::kCompleteStage,
       "complete_stage",
       {S::kAssigned, S::kRunning},
       S::kQueued,
       "trial_stage_completed"},
      {T::kComplete, "complete", {S::kAssigned, S::kRunning}, S::kCompleted, "trial_completed"},
      {T::kFail, "fail", {S::kAssigned, S::kRunning}, S::kFailed, "trial_failed"},
      {T::kRetry, "retry", {S::kAssigned, S::kRunning}, S::kQueued, "trial_restarting"},
      {T::kPreempt, "preempt", {S::kAssigned, S::kRunning}, S::kQueued, "trial_preempted"},
      {T::kLose, "lose", {S::kAssigned, S::kRunning}, S::kQueued, "trial_assignment_lost"},
      {T::kCancel,
       "cancel",
       {S::kQueued, S::kAssigned, S::kRunning, S::kStopped},
       S::kCanceled,
       "trial_canceled"},
      {T::kStop, "stop", {S::kAssigned, S::kRunning, S::kCanceled}, S::kStopped, "trial_stopped"},
      {T::kResume, "resume", {S::kStopped}, S::kQueued, "trial_resumed"},
  };
  return rules;
}

std::string StateList(const std::vector<TrialState>& states) {
  std::string out;
  for (TrialState s : states) {
    if (!out.empty()) out += ", ";
    out += TrialStateName(s);
  }
  return out;
}

}  // namespace

std::span<const TransitionRule> TransitionTable() { return Rules(); }

const TransitionRule& RuleOf(TrialTransition transition) {
  return Rules().at(static_cast<size_t>(transition));
}

Status CheckTransition(const TrialRecord& trial, TrialTransition transition) {
  const TransitionRule& rule = RuleOf(transition);
  if (std::find(rule.from.begin(), rule.from.end(), trial.state) != rule.from.end()) {
    return OkStatus();
  }
  return FailedPreconditionError(
      "trial " + std::to_string(trial.id) + ": cannot " + std::string(rule.name) +
      " a trial that is " + std::string(TrialStateName(trial.state)) + " (" +
      std::string(rule.name) + " applies to: " + StateList(rule.from) + ")");
}

std::string RenderLifecycleDiagram() {
  std::string out = "stateDiagram-v2\n    [*] --> queued: created\n";
  for (const TransitionRule& rule : TransitionTable()) {
    for (TrialState from : rule.from) {
      out += "    ";
      out += TrialStateName(from);
      out += " --> ";
      out += TrialStateName(rule.to);
      out += ": ";
      out += rule.name;
      out += "\n";
    }
  }
  for (TrialState state : kAllTrialStates) {
    if (IsFinished(state)) {
      out += "    ";
      out += TrialStateName(state);
      out += " --> [*]\n";
    }
  }
  return out;
}

void Lifecycle::Record(TrialRecord& trial, TrialTransition transition, Json::Object detail) {
  const TransitionRule& rule = RuleOf(transition);
  trial.state = rule.to;
  if (trial.state == TrialState::kQueued) trial.queued_at_ms = now_ms_;
  detail["kind"] = Json(std::string(rule.event));
  detail["trial"] = Json(trial.id);
  detail["experiment"] = Json(trial.experiment);
  detail["attempt"] = Json(trial.attempt);
  detail["time_ms"] = Json(now_ms_);
  change_.PutTrial(trial.ToJson());
  change_.AddEvent(Json(std::move(detail)));
}

Status Lifecycle::Queue(TrialRecord& trial, int64_t experiment, const std::string& why) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kQueue));
  trial.experiment = experiment;
  trial.restarts = 0;
  trial.cancel_requested = false;
  trial.cause.clear();
  Record(trial, T::kQueue, {{"cause", why}});
  return OkStatus();
}

Status Lifecycle::Assign(TrialRecord& trial, const std::vector<std::string>& gang,
                         Json::Object detail) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kAssign));
  if (gang.empty())
    return InvalidArgumentError("trial " + std::to_string(trial.id) + ": no worker");
  ++trial.attempt;
  ++trial.stage_runs;
  trial.worker = gang.front();
  trial.gang = gang.size() > 1 ? gang : std::vector<std::string>{};
  detail["worker"] = Json(gang.front());
  Record(trial, T::kAssign, std::move(detail));
  return OkStatus();
}

Status Lifecycle::Start(TrialRecord& trial, const std::string& worker) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kStart));
  Record(trial, T::kStart, {{"worker", worker}});
  return OkStatus();
}

Status Lifecycle::Adopt(TrialRecord& trial, const std::string& worker) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kAdopt));
  Json::Object detail{{"worker", worker}};
  if (trial.state == TrialState::kQueued) {
    trial.restarts = std::max<int64_t>(0, trial.restarts - 1);
    detail["after"] = Json("worker lost");
  }
  Record(trial, T::kAdopt, std::move(detail));
  return OkStatus();
}

Status Lifecycle::CompleteStage(TrialRecord& trial, const std::string& stage_name, Json result) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kCompleteStage));
  trial.results.as_object()[stage_name] = std::move(result);
  ++trial.stage;
  trial.stage_runs = 0;
  Record(trial, T::kCompleteStage, {{"stage", stage_name}});
  return OkStatus();
}

Status Lifecycle::Complete(TrialRecord& trial, const std::string& stage_name, Json result,
                           const std::string& worker) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kComplete));
  trial.results.as_object()[stage_name] = std::move(result);
  trial.completed_ms = now_ms_;
  Record(trial, T::kComplete, {{"worker", worker}});
  return OkStatus();
}

Status Lifecycle::Fail(TrialRecord& trial, const std::string& cause_kind,
                       const std::string& attempt_cause, const std::string& cause) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kFail));
  Json::Object detail{{"cause", cause}};
  if (!cause_kind.empty()) {
    trial.failures.push_back({trial.attempt, trial.stage, now_ms_, cause_kind, attempt_cause});
    detail["cause_kind"] = Json(cause_kind);
  }
  trial.cause = cause;
  Record(trial, T::kFail, std::move(detail));
  return OkStatus();
}

Status Lifecycle::Retry(TrialRecord& trial, const std::string& cause_kind, const std::string& cause,
                        int64_t budget) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kRetry));
  if (trial.restarts >= budget) {
    return FailedPreconditionError("trial " + std::to_string(trial.id) +
                                   ": cannot retry: " + std::to_string(trial.restarts) +
                                   " of max_restarts " + std::to_string(budget) + " spent");
  }
  trial.failures.push_back({trial.attempt, trial.stage, now_ms_, cause_kind, cause});
  ++trial.restarts;
  Record(trial, T::kRetry,
         {{"cause", cause}, {"cause_kind", cause_kind}, {"restarts", trial.restarts}});
  return OkStatus();
}

Status Lifecycle::Preempt(TrialRecord& trial, const std::string& cause) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kPreempt));
  Record(trial, T::kPreempt, {{"cause", cause}});
  return OkStatus();
}

Status Lifecycle::Lose(TrialRecord& trial, const std::string& cause) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kLose));
  Record(trial, T::kLose, {{"cause", cause}});
  return OkStatus();
}

Status Lifecycle::Cancel(TrialRecord& trial, const std::string& cause) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kCancel));
  Json::Object detail;
  if (!cause.empty()) detail["cause"] = Json(cause);
  Record(trial, T::kCancel, std::move(detail));
  return OkStatus();
}

Status Lifecycle::Stop(TrialRecord& trial, const std::string& cause) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kStop));
  Record(trial, T::kStop, {{"cause", cause}});
  return OkStatus();
}

Status Lifecycle::Resume(TrialRecord& trial, const std::string& why) {
  MAESTRO_RETURN_IF_ERROR(CheckTransition(trial, T::kResume));
  Json::Object detail;
  if (!why.empty()) detail["cause"] = Json(why);
  Record(trial, T::kResume, std::move(detail));
  return OkStatus();
}

}  // namespace maestro::coordinator
