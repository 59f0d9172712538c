#include "maestro/coordinator/worker_pool.h"

#include <algorithm>

namespace maestro::coordinator {

void WorkerPool::Expect(const std::string& id, const AttemptRef& ref, int64_t now_ms) {
  WorkerState& worker = workers_[id];
  worker.id = id;
  worker.alive = true;
  worker.last_heartbeat_ms = now_ms;
  worker.running.insert(ref);
}

void WorkerPool::Restore(const Json& stored) {
  const std::string id = stored.StringOr("id");
  if (id.empty()) return;
  WorkerState& worker = workers_[id];
  worker.id = id;
  worker.build = stored.StringOr("build");
  worker.address = stored.StringOr("address");
  worker.slots = stored.IntOr("slots", 0);
  worker.cpu_cores = stored.IntOr("cpu_cores", 0);
  worker.memory_mb = stored.IntOr("memory_mb", 0);
}

WorkerState& WorkerPool::StartSession(const WorkerRegistration& r, std::string session,
                                      int64_t now_ms, bool& replaced) {
  WorkerState& worker = workers_[r.id];
  replaced = worker.confirmed && worker.alive;
  worker.id = r.id;
  worker.session = std::move(session);
  worker.build = r.build;
  worker.address = r.address;
  worker.slots = r.slots;
  worker.cpu_cores = r.cpu_cores;
  worker.memory_mb = r.memory_mb;
  worker.alive = true;
  worker.confirmed = true;
  worker.last_heartbeat_ms = now_ms;
  worker.pending_kills.clear();
  worker.beats = 0;
  worker.assigned_beat.clear();
  worker.session_attempts.clear();
  worker.session_refused.clear();
  return worker;
}

WorkerState* WorkerPool::Session(const std::string& id, const std::string& session) {
  auto it = workers_.find(id);
  if (it == workers_.end() || !it->second.alive || it->second.session.empty() ||
      it->second.session != session) {
    return nullptr;
  }
  return &it->second;
}

WorkerState* WorkerPool::Find(const std::string& id) {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

std::vector<AttemptRef> WorkerPool::Beat(WorkerState& worker, const std::vector<AttemptRef>& held,
                                         int64_t now_ms) {
  worker.last_heartbeat_ms = now_ms;
  ++worker.beats;
  std::vector<AttemptRef> lost;
  const std::set<AttemptRef> holds(held.begin(), held.end());
  for (auto it = worker.assigned_beat.begin(); it != worker.assigned_beat.end();) {
    if (holds.count(it->first)) {
      it = worker.assigned_beat.erase(it);
    } else if (it->second >= worker.beats) {
      ++it;  // carried by an answer this worker has not had the chance to act on
    } else {
      lost.push_back(it->first);
      it = worker.assigned_beat.erase(it);
    }
  }
  return lost;
}

void WorkerPool::Deliver(WorkerState& worker, HeartbeatOutcome& out) {
  out.kill.insert(out.kill.end(), worker.pending_kills.begin(), worker.pending_kills.end());
  worker.pending_kills.clear();
  for (AttemptPlan& plan : worker.pending_launches) {
    worker.assigned_beat[{plan.trial, plan.attempt}] = worker.beats;
    out.assignments.push_back(std::move(plan));
  }
  worker.pending_launches.clear();
}

std::vector<WorkerState*> WorkerPool::Silent(int64_t now_ms, int64_t timeout_ms) {
  std::vector<WorkerState*> out;
  for (auto& [id, worker] : workers_) {
    if (worker.alive && now_ms - worker.last_heartbeat_ms > timeout_ms) out.push_back(&worker);
  }
  return out;
}

void WorkerPool::MarkLost(WorkerState& worker) {
  worker.alive = false;
  worker.session.clear();
}

std::set<AttemptRef> WorkerPool::PendingLaunches(const WorkerState& worker) const {
  std::set<AttemptRef> out;
  for (const AttemptPlan& plan : worker.pending_launches) out.insert({plan.trial, plan.attempt});
  return out;
}

void WorkerPool::DropPendingLaunch(WorkerState& worker, const AttemptRef& ref) {
  auto& pending = worker.pending_launches;
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [&](const AttemptPlan& p) {
                                 return p.trial == ref.trial && p.attempt == ref.attempt;
                               }),
                pending.end());
}

void WorkerPool::Forget(const std::string& id) {
  auto it = workers_.find(id);
  if (it != workers_.end() && it->second.running.empty()) workers_.erase(it);
}

void WorkerPool::Launch(const std::vector<std::string>& workers, std::vector<AttemptPlan> plans) {
  for (size_t i = 0; i < workers.size() && i < plans.size(); ++i) {
    WorkerState& worker = workers_[workers[i]];
    const AttemptRef ref{plans[i].trial, plans[i].attempt};
    worker.running.insert(ref);
    worker.session_attempts.insert(ref);
    worker.pending_launches.push_back(std::move(plans[i]));
  }
}

void WorkerPool::Stop(const std::vector<std::string>& workers, const AttemptRef& ref) {
  for (const std::string& id : workers) {
    if (auto it = workers_.find(id); it != workers_.end()) it->second.pending_kills.push_back(ref);
  }
}

void WorkerPool::Release(const std::vector<std::string>& workers, const AttemptRef& ref) {
  for (const std::string& id : workers) {
    auto it = workers_.find(id);
    if (it == workers_.end()) continue;
    WorkerState& worker = it->second;
    worker.running.erase(ref);
    // The other nodes of a gang stop with it (a node that already ended ignores this).
    if (workers.size() > 1) worker.pending_kills.push_back(ref);
    DropPendingLaunch(worker, ref);
  }
}

}  // namespace maestro::coordinator
