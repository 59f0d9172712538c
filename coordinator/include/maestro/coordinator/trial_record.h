// A trial as the coordinator stores it (key trial/<id>, store.h): its state, its current
// attempt and where that attempt runs, its pipeline stage, its restarts and failures, and the
// results of its finished stages. The one definition of a trial's states: the scheduler, the
// metrics by state, the CLI's final-state check and the results table all use it. Plain data;
// the only way to change `state` is a named transition (lifecycle.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

enum class TrialState {
  kQueued,     // waiting for a place (first run, a restart, a pipeline's next stage)
  kAssigned,   // an attempt was handed to its worker(s); no progress heard yet
  kRunning,    // the attempt's trainer reported progress, or its worker listed it
  kStopped,    // paused by a searcher, its checkpoint kept: resumable, not finished
  kCompleted,  // every stage completed
  kFailed,     // a permanent failure, or its restart budget spent
  kCanceled,   // canceled by a user (or refused at load)
};

// Every state, in the order above (tables and metrics list them in this order).
inline constexpr TrialState kAllTrialStates[] = {
    TrialState::kQueued,    TrialState::kAssigned, TrialState::kRunning, TrialState::kStopped,
    TrialState::kCompleted, TrialState::kFailed,   TrialState::kCanceled};

// The stored name: "queued", "assigned", ...
std::string_view TrialStateName(TrialState state);
// The state of a stored name; nullopt for an unknown one.
std::optional<TrialState> ParseTrialState(std::string_view name);
// Assigned or running: an attempt is current and its workers hold it.
bool IsActive(TrialState state);
// Completed, failed or canceled: nothing more will run (stopped is not finished).
bool IsFinished(TrialState state);

// One attempt that ended without completing its stage.
struct TrialFailure {
  int64_t attempt = 0, stage = 0, time_ms = 0;
  std::string cause_kind;  // crash, signal, worker_lost, retryable, permanent, cannot_start
  std::string cause;
};

struct TrialRecord {
  int64_t id = 0, experiment = 0;  // experiment: the one whose settings it runs under now
  std::string identity;            // experiment.h TrialIdentity
  Json hparams = Json(Json::Object{});
  TrialState state = TrialState::kQueued;
  int64_t attempt = 0;            // raised by each assignment; 0: never assigned
  std::string worker;             // the current (or last) attempt's worker (a gang's node 0)
  std::vector<std::string> gang;  // a multi-node attempt's workers, node 0 first; else empty
  int64_t stage = 0;              // the pipeline stage it is in (0: the training job)
  int64_t stage_runs = 0;         // attempts of this stage so far (> 0: resume)
  int64_t restarts = 0;           // charged restarts, never above the experiment's budget
  int64_t queued_at_ms = 0, completed_ms = 0;  // wall clock
  bool cancel_requested = false;               // its trainer was told to stop; it ends canceled
  std::string cause;                           // why it failed or was canceled
  std::vector<TrialFailure> failures;
  Json results = Json(Json::Object{});  // stage name -> result summary
  // asha (asha.h): the rung it trains to (or stopped at), and its metric at each rung it
  // reached, in order. Grid and random trials: 0 and none.
  int64_t rung = 0;
  std::vector<double> rung_metrics;
  Json::Object other;                   // stored fields this version does not know, kept

  // Reads a stored record. INVALID_ARGUMENT naming the field for a missing id, experiment or
  // state, an unknown state, or a field of the wrong type.
  static Result<TrialRecord> FromJson(const Json& json);
  // The stored form (read back equal by FromJson). Optional fields are left out at their
  // defaults, as records have always been stored.
  Json ToJson() const;
  // The workers holding the current attempt: the gang, or the worker alone.
  std::vector<std::string> Workers() const;
};

}  // namespace maestro::coordinator
