// A trial's lifecycle: the table of allowed transitions and the named functions that apply
// them. A transition is the only way a trial's state changes; each one checks the table,
// changes the record, and adds the record and its event to the caller's Change, so a state
// change and its event are stored in the same synced batch (store.h).
//
//   transition       from                                 to          event
//   queue            failed, canceled                     queued      trial_requeued
//   assign           queued                               assigned    trial_assigned
//   start            assigned                             running     trial_running
//   adopt            queued, assigned, running            running     trial_adopted
//   complete_stage   assigned, running                    queued      trial_stage_completed
//   complete         assigned, running                    completed   trial_completed
//   fail             assigned, running                    failed      trial_failed
//   retry            assigned, running                    queued      trial_restarting
//   preempt          assigned, running                    queued      trial_preempted
//   lose             assigned, running                    queued      trial_assignment_lost
//   cancel           queued, assigned, running, stopped   canceled    trial_canceled
//   stop             assigned, running, canceled          stopped     trial_stopped
//   resume           stopped                              queued      trial_resumed
//
// (TransitionTable() is this table; lifecycle_test walks every state x transition, and
// docs/orchestration.md's diagram is checked against RenderLifecycleDiagram().) What lies
// outside a trial record (the queue, the workers' attempts) is the scheduler's to follow.
// Not thread-safe: the caller holds the scheduler's lock.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/coordinator/store.h"
#include "maestro/coordinator/trial_record.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

enum class TrialTransition {
  kQueue,          // submitted again after it failed or was canceled
  kAssign,         // a new attempt handed to its worker(s)
  kStart,          // the attempt's first progress
  kAdopt,          // a worker (re-registering) holds the current attempt's trainer
  kCompleteStage,  // a pipeline stage completed; the next one waits for a place
  kComplete,       // the last stage completed
  kFail,           // a permanent failure, the budget spent, or the attempt cannot start
  kRetry,          // a retryable failure within the restart budget (charged)
  kPreempt,        // preempted or stopped on request (free); resumes from its checkpoint
  kLose,           // the attempt never reached its worker (free)
  kCancel,         // canceled by a user
  kStop,           // paused by a searcher, its checkpoint kept (from canceled: a trial canceled
                   // while stopped, its experiment continued)
  kResume,         // a stopped trial queued again, to resume from its checkpoint
};

struct TransitionRule {
  TrialTransition transition;
  std::string_view name;         // "complete_stage"
  std::vector<TrialState> from;  // the states it applies to
  TrialState to;
  std::string_view event;  // the kind of the event it adds
};

// Every transition, in the order of TrialTransition.
std::span<const TransitionRule> TransitionTable();
const TransitionRule& RuleOf(TrialTransition transition);
// OK when `transition` applies to a trial in `state`; else FAILED_PRECONDITION naming the
// trial, the transition, the state and the states it applies to.
Status CheckTransition(const TrialRecord& trial, TrialTransition transition);

// docs/orchestration.md's lifecycle diagram (a Mermaid stateDiagram), made from the table.
std::string RenderLifecycleDiagram();

// Applies transitions; each records the trial and its event in `change`, stamped `now_ms`
// (wall clock). A transition that does not apply returns CheckTransition's error and changes
// nothing.
class Lifecycle {
 public:
  Lifecycle(Change& change, int64_t now_ms) : change_(change), now_ms_(now_ms) {}

  // Under `experiment`'s settings now, restarts reset. `why`: the event's cause.
  Status Queue(TrialRecord& trial, int64_t experiment, const std::string& why);
  // Attempt + 1 on `gang` (node 0 first; one worker: not a gang). `detail`: the event's.
  Status Assign(TrialRecord& trial, const std::vector<std::string>& gang, Json::Object detail);
  Status Start(TrialRecord& trial, const std::string& worker);
  // From queued (the attempt was requeued when its worker was declared lost, and nothing ran
  // since), the restart charged for that loss is given back.
  Status Adopt(TrialRecord& trial, const std::string& worker);
  Status CompleteStage(TrialRecord& trial, const std::string& stage_name, Json result);
  Status Complete(TrialRecord& trial, const std::string& stage_name, Json result,
                  const std::string& worker);
  // `cause_kind`/`attempt_cause`: the failure recorded for the attempt (none when cause_kind
  // is empty); `cause`: why the trial failed.
  Status Fail(TrialRecord& trial, const std::string& cause_kind, const std::string& attempt_cause,
              const std::string& cause);
  // FAILED_PRECONDITION, with nothing changed, when `budget` restarts are spent.
  Status Retry(TrialRecord& trial, const std::string& cause_kind, const std::string& cause,
               int64_t budget);
  Status Preempt(TrialRecord& trial, const std::string& cause);
  Status Lose(TrialRecord& trial, const std::string& cause);
  Status Cancel(TrialRecord& trial, const std::string& cause);
  Status Stop(TrialRecord& trial, const std::string& cause);
  // `why`: the event's cause ("promoted to rung 2", say); none when empty.
  Status Resume(TrialRecord& trial, const std::string& why = "");

 private:
  // Checks, moves `trial` to the rule's state, and records it with its event.
  void Record(TrialRecord& trial, TrialTransition transition, Json::Object detail);

  Change& change_;
  int64_t now_ms_;
};

}  // namespace maestro::coordinator
