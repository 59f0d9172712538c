// maestro's own worker daemons as an attempt backend (attempt.h). Workers pull: each heartbeat
// reports progress and what the worker holds, and its answer carries what waits for that
// worker (its share of launched attempts, attempts to stop). The pool keeps the workers'
// sessions, liveness and capacity, and notices an answer that never arrived (an attempt an
// earlier answer carried that the worker does not hold). What an attempt's end means for its
// trial is the scheduler's to decide. Not thread-safe: the scheduler's lock covers it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "maestro/coordinator/attempt.h"
#include "maestro/shared/json.h"

namespace maestro::coordinator {

struct WorkerRegistration {
  std::string id, build, address;
  int64_t protocol_version = 0;
  int64_t slots = 1, cpu_cores = 0, memory_mb = 0;
  std::vector<AttemptRef> running;  // trainers still running from an earlier session
  std::string actor;                // the credential that registers it (the event log's "by")
};

struct RegisterOutcome {
  std::string session;
  int64_t heartbeat_interval_ms = 0;
  int64_t worker_timeout_ms = 0;
  std::vector<AttemptRef> kill;
};

struct LogPiece {
  int64_t trial = 0, attempt = 0, offset = 0;
  std::string data;
};

struct HeartbeatOutcome {
  bool reregister = false;
  std::vector<AttemptPlan> assignments;
  std::vector<AttemptRef> kill;
  std::vector<LogPiece> log_acks;   // offset: the bytes stored of that attempt; data empty
  std::vector<AttemptRef> current;  // the worker's current attempts after this beat
};

// One worker as the coordinator knows it.
struct WorkerState {
  std::string id, session, build, address;
  int64_t slots = 0, cpu_cores = 0, memory_mb = 0;
  bool alive = false;
  bool confirmed = false;         // registered in this coordinator's life (not just expected)
  int64_t last_heartbeat_ms = 0;  // the scheduler's clock's SteadyMs()
  std::set<AttemptRef> running;   // the attempts it holds for the scheduler
  // Attempts this session was assigned or adopted (its reports are heard), and those it
  // listed at registration that were not adopted (being killed: logs taken, not stored).
  std::set<AttemptRef> session_attempts, session_refused;
  // Whether this session may report on `ref` (one of the two sets above).
  bool Heard(const AttemptRef& ref) const {
    return session_attempts.count(ref) > 0 || session_refused.count(ref) > 0;
  }

 private:
  friend class WorkerPool;
  std::vector<AttemptRef> pending_kills;
  std::vector<AttemptPlan> pending_launches;
  int64_t beats = 0;                            // heartbeats of this session
  std::map<AttemptRef, int64_t> assigned_beat;  // the heartbeat whose answer carried it
};

class WorkerPool : public AttemptBackend {
 public:
  // At load: `id` held `ref` when the coordinator stopped. It counts as alive (not confirmed)
  // until it registers again or the timeout passes.
  void Expect(const std::string& id, const AttemptRef& ref, int64_t now_ms);
  // At load: a worker's last registration (its resources) as stored.
  void Restore(const Json& stored);
  // A new session for `r.id` (any earlier one ends): alive, confirmed, nothing pending. Its
  // attempts are the caller's to set. `replaced`: a live session was replaced.
  WorkerState& StartSession(const WorkerRegistration& r, std::string session, int64_t now_ms,
                            bool& replaced);
  // The worker if `session` is its current live session; else nullptr.
  WorkerState* Session(const std::string& id, const std::string& session);
  WorkerState* Find(const std::string& id);
  // A heartbeat of `worker` holding `held`: the attempts an earlier answer carried that it
  // does not hold (those answers were lost), no longer tracked.
  std::vector<AttemptRef> Beat(WorkerState& worker, const std::vector<AttemptRef>& held,
                               int64_t now_ms);
  // Moves what waits for `worker` into its heartbeat's answer.
  void Deliver(WorkerState& worker, HeartbeatOutcome& out);
  // Live workers silent for more than `timeout_ms`.
  std::vector<WorkerState*> Silent(int64_t now_ms, int64_t timeout_ms);
  // Ends `worker`'s session: it must register again. Its attempts are the caller's to end.
  void MarkLost(WorkerState& worker);
  // The attempts launched on `worker` that wait for its next heartbeat's answer.
  std::set<AttemptRef> PendingLaunches(const WorkerState& worker) const;
  // `ref` no longer waits for `worker` (it runs it already).
  void DropPendingLaunch(WorkerState& worker, const AttemptRef& ref);
  // Forgets worker `id` (one Slurm job's: its job is gone) unless it still holds an attempt.
  void Forget(const std::string& id);
  std::map<std::string, WorkerState>& workers() { return workers_; }
  const std::map<std::string, WorkerState>& workers() const { return workers_; }

  // AttemptBackend: launches and stops wait for the workers' next heartbeats.
  void Launch(const std::vector<std::string>& workers, std::vector<AttemptPlan> plans) override;
  void Stop(const std::vector<std::string>& workers, const AttemptRef& ref) override;
  void Release(const std::vector<std::string>& workers, const AttemptRef& ref) override;

 private:
  std::map<std::string, WorkerState> workers_;
};

}  // namespace maestro::coordinator
