#include "maestro/coordinator/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <tuple>

#include "maestro/coordinator/lifecycle.h"
#include "maestro/coordinator/searcher.h"
#include "maestro/shared/exit_status.h"
#include "maestro/shared/ids.h"
#include "maestro/shared/trial_placement.h"

namespace maestro::coordinator {
namespace {

// A transition the scheduler applies only where the table allows it: a refusal is a bug in
// the scheduler, logged (the state stays as it was).
void Applied(const Status& status) {
  if (!status.ok()) {
    std::cerr << "maestro-coordinator: error: internal: " << status.ToString() << std::endl;
  }
}

// What a results table needs of a stage's result.json (the full record stays on disk).
Json ResultSummary(const Json& result) {
  Json::Object out;
  for (const char* key : {"job", "optimizer_steps", "final_train_loss", "final", "checkpoint"}) {
    if (const Json* value = result.Find(key)) out[key] = *value;
  }
  return Json(std::move(out));
}

}  // namespace

Scheduler::Scheduler(std::unique_ptr<Store> store, SchedulerOptions options)
    : store_(std::move(store)),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock()),
      logs_(*store_) {
  if (options_.slurm.enabled()) {
    slurm_ = std::make_unique<SlurmBackend>(workers_, options_.slurm, options_.runs_dir, *clock_);
    backend_ = slurm_.get();
  } else {
    backend_ = &workers_;
  }
}
Scheduler::~Scheduler() = default;

Result<std::unique_ptr<Scheduler>> Scheduler::Open(std::unique_ptr<Store> store,
                                                   SchedulerOptions options) {
  if (options.runs_dir.empty() || options.runs_dir.front() != '/') {
    return InvalidArgumentError("the runs folder must be an absolute path, not '" +
                                options.runs_dir + "'");
  }
  if (options.slurm.enabled()) MAESTRO_RETURN_IF_ERROR(CheckSlurmOptions(options.slurm));
  std::unique_ptr<Scheduler> scheduler(new Scheduler(std::move(store), std::move(options)));
  MAESTRO_RETURN_IF_ERROR(scheduler->Load());
  return scheduler;
}

Status Scheduler::Load() {
  MAESTRO_ASSIGN_OR_RETURN(auto refused, catalogue_.Load(*store_));
  const int64_t now = clock_->SteadyMs();
  for (const Json& stored : store_->Trials()) {
    auto parsed = TrialRecord::FromJson(stored);
    if (!parsed.ok()) return DataLossError("a stored trial: " + parsed.status().message());
    TrialRecord& trial = trials_.emplace(parsed->id, std::move(*parsed)).first->second;
    if (trial.state == TrialState::kQueued) {
      Enqueue(trial);
    } else if (IsActive(trial.state) && slurm_ && IsSlurmWorkerId(trial.worker)) {
      // A Slurm job's attempt: its job is looked for in the queue. One that had not started
      // gets its plan again (its worker may not have registered yet); a started one's worker
      // registers again as any worker does.
      const AttemptRef ref{trial.id, trial.attempt};
      const ExperimentSpec* spec = SpecOf(trial);
      std::optional<AttemptPlan> plan;
      if (trial.state == TrialState::kAssigned && spec != nullptr) {
        if (auto planned = PlanOf(trial, *spec); planned.ok()) plan = std::move(*planned);
      }
      if (!plan) workers_.Expect(trial.worker, ref, now);
      slurm_->Recover(trial.worker, ref, plan ? &*plan : nullptr);
      running_[trial.id] = Running{};
    } else if (IsActive(trial.state)) {
      // Its workers have until the timeout to register again and list it; else they are lost.
      for (const std::string& worker_id : trial.Workers()) {
        workers_.Expect(worker_id, {trial.id, trial.attempt}, now);
      }
      running_[trial.id] = Running{};
    }
  }
  for (const Json& stored : store_->Workers()) workers_.Restore(stored);
  for (const auto& [id, why] : refused) RefuseStoredExperiment(id, why);
  return OkStatus();
}

void Scheduler::RefuseStoredExperiment(int64_t id, const std::string& why) {
  const std::string message = "refused at load: " + why +
                              "; its unfinished trials are canceled (submit the experiment "
                              "again: `maestro experiment create FILE` sends its configs inline)";
  std::cerr << "maestro-coordinator: experiment " << id << " " << message << std::endl;
  Json& experiment = *catalogue_.Experiment(id);
  experiment.as_object()["state"] = Json("canceled");
  experiment.as_object()["refused"] = Json(message);
  Change change;
  change.SetActor("coordinator");
  change.PutExperiment(experiment);
  change.AddEvent(Json(Json::Object{{"kind", "experiment_refused"},
                                    {"experiment", id},
                                    {"message", message},
                                    {"time_ms", clock_->WallMs()}}));
  Lifecycle life(change, clock_->WallMs());
  for (int64_t trial_id : ExperimentCatalogue::TrialIdsOf(experiment)) {
    auto it = trials_.find(trial_id);
    if (it == trials_.end() || it->second.experiment != id) continue;
    TrialRecord& trial = it->second;
    if (trial.state != TrialState::kQueued && !IsActive(trial.state)) continue;
    // An active one's trainer is stopped when its worker lists it again (no longer current).
    Dequeue(trial);
    if (IsActive(trial.state)) ReleaseAttempt(trial);
    Applied(life.Cancel(trial, "experiment " + std::to_string(id) + " " + message));
  }
  CommitOrLog(std::move(change));
}

const ExperimentSpec* Scheduler::SpecOf(const TrialRecord& trial) const {
  return catalogue_.Spec(trial.experiment);
}

void Scheduler::Enqueue(const TrialRecord& trial) {
  if (const ExperimentSpec* spec = SpecOf(trial)) {
    queue_.insert({-spec->resources.priority, -trial.rung, trial.id});
  }
}

void Scheduler::Dequeue(const TrialRecord& trial) {
  if (const ExperimentSpec* spec = SpecOf(trial)) {
    queue_.erase({-spec->resources.priority, -trial.rung, trial.id});
  }
}

void Scheduler::CommitOrLog(Change change) {
  if (Status s = store_->Commit(std::move(change)); !s.ok()) {
    // The in-memory state ran ahead of the disk: a restart reloads the last committed state
    // (attempts only move forward, so nothing assigned twice survives).
    std::cerr << "maestro-coordinator: error: " << s.ToString() << std::endl;
  }
}

// ---------------------------------------------------------------------------------------------
// Users

Result<CreatedExperiment> Scheduler::CreateExperiment(const Json& tree,
                                                      const std::string& idempotency_key,
                                                      const std::string& actor) {
  MAESTRO_ASSIGN_OR_RETURN(ExperimentSpec spec, ParseExperiment(tree));
  MAESTRO_RETURN_IF_ERROR(CheckTrialInputs(spec, options_.data_roots, options_.runs_dir));
  // Slurm places any shape it has nodes for; worker daemons have their limits.
  if (!slurm_) MAESTRO_RETURN_IF_ERROR(CheckWorkerShape(spec));
  // The trials and their identities (each trial's config checked against the trainer's
  // schema) are made before the lock: heartbeats never wait for a large grid.
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<SearchMethod> search, MakeSearchMethod(spec));
  std::vector<NewTrial> trials;
  for (const auto& trial : search->Start()) {
    auto identity = TrialIdentity(spec, trial.hparams);
    if (!identity.ok()) {
      return identity.status().WithContext("trial " + std::to_string(trial.ordinal));
    }
    trials.push_back({*identity, trial.hparams, spec.searcher.name != "asha"});
  }
  if (trials.empty()) return InvalidArgumentError("hyperparameters: the experiment has no trials");
  std::lock_guard<std::mutex> lock(mutex_);
  if (catalogue_.Dataset(spec.dataset) == nullptr) {
    return NotFoundError("dataset: unknown dataset '" + spec.dataset + "' (registered: " +
                         catalogue_.DatasetNames() + "; add it with `maestro dataset register`)");
  }
  if (!slurm_) MAESTRO_RETURN_IF_ERROR(CheckPlaceable(spec.resources, workers_));
  Json record(Json::Object{{"name", spec.name},
                           {"kind", spec.kind},
                           {"dataset", spec.dataset},
                           {"spec", tree},
                           {"created_ms", clock_->WallMs()},
                           {"created_by", actor}});
  MAESTRO_ASSIGN_OR_RETURN(CreatedExperiment created,
                           store_->CreateExperiment(record, trials, idempotency_key));
  if (created.existed) return created;
  MAESTRO_ASSIGN_OR_RETURN(Json stored, store_->Experiment(created.id));
  catalogue_.Add(created.id, std::move(stored), std::move(spec));
  MAESTRO_RETURN_IF_ERROR(TakeTrials(created, actor));
  return created;
}

Status Scheduler::TakeTrials(const CreatedExperiment& created, const std::string& actor) {
  Change change;
  change.SetActor(actor);
  Lifecycle life(change, clock_->WallMs());
  for (int64_t id : created.trials) {
    if (auto known = trials_.find(id); known != trials_.end()) {
      // Shared with an earlier experiment: a completed or live cell is never rerun; a failed
      // or canceled one runs again, now under this experiment's settings.
      TrialRecord& trial = known->second;
      if (trial.state != TrialState::kFailed && trial.state != TrialState::kCanceled) continue;
      const std::string before(TrialStateName(trial.state));
      Applied(life.Queue(trial, created.id, "submitted again after " + before));
      Enqueue(trial);
      continue;
    }
    MAESTRO_ASSIGN_OR_RETURN(Json stored_trial, store_->Trial(id));
    MAESTRO_ASSIGN_OR_RETURN(TrialRecord trial, TrialRecord::FromJson(stored_trial));
    trial.queued_at_ms = clock_->WallMs();
    change.PutTrial(trial.ToJson());
    Enqueue(trials_.emplace(id, std::move(trial)).first->second);
  }
  CommitOrLog(std::move(change));
  return OkStatus();
}

Result<std::vector<int64_t>> Scheduler::ExtendExperiment(int64_t id, int64_t count,
                                                         const std::string& actor) {
  if (count <= 0)
    return InvalidArgumentError("trials: extend by at least 1, not " + std::to_string(count));
  // The spec as it is now; the new trials' identities are made outside the lock (a large
  // extension never holds up heartbeats), then stored if nobody extended it meanwhile.
  ExperimentSpec spec;
  Json tree;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Json* experiment = catalogue_.Experiment(id);
    if (experiment == nullptr) return NotFoundError("no experiment " + std::to_string(id));
    MAESTRO_RETURN_IF_ERROR(CheckRunnable(id, *experiment));
    spec = *catalogue_.Spec(id);
    tree = experiment->Find("spec") != nullptr ? *experiment->Find("spec") : Json();
  }
  if (spec.searcher.name == "grid") {
    return FailedPreconditionError("experiment " + std::to_string(id) +
                                   " searches with grid: only a random or asha search draws more "
                                   "trials (a grid's trials are its cells: submit a grid with more "
                                   "values)");
  }
  const int64_t before = spec.searcher.max_trials;
  if (count > kMaxTrialsPerExperiment - before) {
    return InvalidArgumentError("trials: " + std::to_string(before) + " + " +
                                std::to_string(count) + " is more than an experiment may have (" +
                                std::to_string(kMaxTrialsPerExperiment) + ")");
  }
  spec.searcher.max_trials = before + count;
  if (!tree.is_object())
    return FailedPreconditionError("experiment " + std::to_string(id) + " has no stored spec");
  Json& searcher = tree.as_object()["searcher"];
  if (!searcher.is_object()) searcher = Json(Json::Object{});
  searcher.as_object()["max_trials"] = Json(spec.searcher.max_trials);
  // Draw i depends only on (seed, i, key): the first `before` draws are the trials it has.
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<SearchMethod> search, MakeSearchMethod(spec));
  std::vector<NewTrial> trials;
  for (const auto& trial : search->Start()) {
    if (trial.ordinal < before) continue;
    auto identity = TrialIdentity(spec, trial.hparams);
    if (!identity.ok()) {
      return identity.status().WithContext("trial " + std::to_string(trial.ordinal));
    }
    trials.push_back({*identity, trial.hparams, spec.searcher.name != "asha"});
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const ExperimentSpec* now = catalogue_.Spec(id);
  if (now == nullptr || now->searcher.max_trials != before) {
    return AbortedError("experiment " + std::to_string(id) + " was extended meanwhile: ask again");
  }
  MAESTRO_ASSIGN_OR_RETURN(CreatedExperiment created,
                           store_->ExtendExperiment(id, tree, trials, actor));
  MAESTRO_ASSIGN_OR_RETURN(Json stored, store_->Experiment(id));
  catalogue_.Add(id, std::move(stored), std::move(spec));
  searchers_.erase(id);  // made again from the new spec
  MAESTRO_RETURN_IF_ERROR(TakeTrials(created, actor));
  return created.trials;
}

std::vector<Json> Scheduler::ListExperiments() {
  std::lock_guard<std::mutex> lock(mutex_);
  return catalogue_.Summaries(trials_);
}

Result<std::string> Scheduler::ExperimentCreator(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Json* experiment = catalogue_.Experiment(id);
  if (experiment == nullptr) return NotFoundError("no experiment " + std::to_string(id));
  return experiment->StringOr("created_by");
}

Result<std::pair<Json, std::vector<Json>>> Scheduler::DescribeExperiment(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Json* experiment = catalogue_.Experiment(id);
  if (experiment == nullptr) return NotFoundError("no experiment " + std::to_string(id));
  std::vector<Json> trials;
  for (int64_t t : ExperimentCatalogue::TrialIdsOf(*experiment)) {
    auto record = trials_.find(t);
    if (record == trials_.end()) continue;
    Json trial = record->second.ToJson();
    auto running = running_.find(t);
    if (running != running_.end() && running->second.has_progress) {
      const auto& p = running->second.progress;
      trial.as_object()["progress"] = Json(Json::Object{{"step", p.step},
                                                        {"total_steps", p.total_steps},
                                                        {"loss", p.loss},
                                                        {"stage", p.stage},
                                                        {"images_per_s", p.images_per_second}});
    }
    trials.push_back(std::move(trial));
  }
  return std::make_pair(*experiment, std::move(trials));
}

Result<std::pair<int64_t, int64_t>> Scheduler::CancelExperiment(int64_t id,
                                                                const std::string& actor) {
  std::lock_guard<std::mutex> lock(mutex_);
  Json* experiment = catalogue_.Experiment(id);
  if (experiment == nullptr) return NotFoundError("no experiment " + std::to_string(id));
  Change change;
  change.SetActor(actor);
  int64_t canceled = 0, stopping = 0;
  if (experiment->StringOr("state") != "canceled") {
    experiment->as_object()["state"] = Json("canceled");
    change.PutExperiment(*experiment);
    change.AddEvent(Json(Json::Object{
        {"kind", "experiment_canceled"}, {"experiment", id}, {"time_ms", clock_->WallMs()}}));
  }
  Lifecycle life(change, clock_->WallMs());
  for (int64_t t : ExperimentCatalogue::TrialIdsOf(*experiment)) {
    auto found = trials_.find(t);
    if (found == trials_.end() || found->second.experiment != id) continue;  // shared: its owner
    TrialRecord& trial = found->second;
    if (trial.state == TrialState::kQueued || trial.state == TrialState::kStopped) {
      Dequeue(trial);
      Applied(life.Cancel(trial, ""));
      ++canceled;
    } else if (IsActive(trial.state)) {
      // Not a state change yet: the trial ends canceled when its attempt ends.
      trial.cancel_requested = true;
      change.PutTrial(trial.ToJson());
      backend_->Stop({trial.worker}, {t, trial.attempt});
      ++stopping;
    }
  }
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  return std::make_pair(canceled, stopping);
}

Result<int64_t> Scheduler::ContinueExperiment(int64_t id, const std::string& actor) {
  std::lock_guard<std::mutex> lock(mutex_);
  Json* experiment = catalogue_.Experiment(id);
  if (experiment == nullptr) return NotFoundError("no experiment " + std::to_string(id));
  MAESTRO_RETURN_IF_ERROR(CheckRunnable(id, *experiment));
  Change change;
  change.SetActor(actor);
  if (experiment->StringOr("state") == "canceled") {
    experiment->as_object().erase("state");
    change.PutExperiment(*experiment);
  }
  Lifecycle life(change, clock_->WallMs());
  int64_t queued = 0;
  for (int64_t t : ExperimentCatalogue::TrialIdsOf(*experiment)) {
    auto found = trials_.find(t);
    if (found == trials_.end()) continue;
    TrialRecord& trial = found->second;
    if (trial.state != TrialState::kFailed && trial.state != TrialState::kCanceled) continue;
    if (trial.state == TrialState::kCanceled && ReachedItsRung(trial)) {
      // Canceled while stopped at a rung: stopped again, for the searcher to promote or not.
      Applied(life.Stop(trial, "continued: stopped at rung " + std::to_string(trial.rung)));
      continue;
    }
    const std::string before(TrialStateName(trial.state));
    Applied(life.Queue(trial, id, "continued after " + before));
    trial.queued_at_ms = clock_->WallMs();
    Enqueue(trial);
    ++queued;
  }
  TellSearcher(id, {TrialEvent::Kind::kContinued}, life);
  change.AddEvent(Json(Json::Object{{"kind", "experiment_continued"},
                                    {"experiment", id},
                                    {"queued", queued},
                                    {"time_ms", clock_->WallMs()}}));
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  return queued;
}

Result<std::pair<Json, Json>> Scheduler::TrialDetail(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = trials_.find(id);
  if (found == trials_.end()) return NotFoundError("no trial " + std::to_string(id));
  const TrialRecord& trial = found->second;
  const ExperimentSpec* spec = SpecOf(trial);
  Json::Object configs;
  if (spec != nullptr) {
    const auto names = StageNames(*spec);
    for (size_t stage = 0; stage < names.size(); ++stage) {
      Json config;
      if (stage == 0) {
        MAESTRO_ASSIGN_OR_RETURN(config, TrialConfig(*spec, trial.hparams));
      } else {
        config = spec->evaluations.at(stage - 1).config;
      }
      if (config.is_object()) StripPlacement(config);
      configs[names[stage]] = std::move(config);
    }
  }
  return std::make_pair(trial.ToJson(), Json(std::move(configs)));
}

Result<std::pair<std::vector<Json>, std::string>> Scheduler::MetricHistory(
    int64_t experiment, int64_t trial, const std::string& page_token, int64_t max_records) {
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (experiment != 0) {
      const Json* record = catalogue_.Experiment(experiment);
      if (record == nullptr) return NotFoundError("no experiment " + std::to_string(experiment));
      ids = ExperimentCatalogue::TrialIdsOf(*record);
    } else if (trials_.count(trial) > 0) {
      ids = {trial};
    } else {
      return NotFoundError("no trial " + std::to_string(trial));
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  // The token: "<trial>.<attempt>.<step>" of the first record of the page.
  int64_t from_trial = ids.empty() ? 0 : ids.front(), from_attempt = 0, from_step = 0;
  if (!page_token.empty()) {
    long long t = 0, a = 0, st = 0;
    char tail = 0;
    if (std::sscanf(page_token.c_str(), "%lld.%lld.%lld%c", &t, &a, &st, &tail) != 3 || t < 0 ||
        a < 0 || st < 0) {
      return InvalidArgumentError("page_token: '" + page_token.substr(0, 64) +
                                  "' is not one this coordinator gave");
    }
    from_trial = t;
    from_attempt = a;
    from_step = st;
  }
  const size_t limit = static_cast<size_t>(std::clamp<int64_t>(max_records, 1, 10000));
  std::vector<Json> out;
  for (int64_t id : ids) {
    if (id < from_trial) continue;
    const bool first = id == from_trial;
    for (MetricRecord& r : store_->MetricsFrom(id, first ? from_attempt : 0, first ? from_step : 0,
                                               limit - out.size() + 1)) {
      if (out.size() == limit) {
        return std::make_pair(std::move(out), std::to_string(id) + "." + std::to_string(r.attempt) +
                                                  "." + std::to_string(r.step));
      }
      Json::Object record = r.record.is_object() ? r.record.as_object() : Json::Object{};
      record["trial"] = Json(id);
      record["attempt"] = Json(r.attempt);
      record["step"] = Json(r.step);
      out.emplace_back(std::move(record));
    }
  }
  return std::make_pair(std::move(out), std::string());
}

Result<TrialLogs> Scheduler::Logs(int64_t trial, int64_t offset, int64_t max_bytes) {
  std::string state;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = trials_.find(trial);
    if (it == trials_.end()) return NotFoundError("no trial " + std::to_string(trial));
    state = TrialStateName(it->second.state);
  }
  MAESTRO_ASSIGN_OR_RETURN(TrialLogs out, logs_.Read(trial, offset, max_bytes));
  out.state = state;
  return out;
}

std::vector<Json> Scheduler::ListWorkers() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Json> out;
  const int64_t now = clock_->SteadyMs();
  for (const auto& [id, w] : workers_.workers()) {
    Json::Array running;
    for (const auto& r : w.running) {
      running.emplace_back(Json::Object{{"trial", r.trial}, {"attempt", r.attempt}});
    }
    const bool seen = w.confirmed;
    out.emplace_back(
        Json::Object{{"id", id},
                     {"state", !w.alive ? "lost"
                               : seen   ? "alive"
                                        : "expected"},
                     {"build", w.build},
                     {"address", w.address},
                     {"slots", w.slots},
                     {"slots_used", UseOf(w).slots},
                     {"cpu_cores", w.cpu_cores},
                     {"memory_mb", w.memory_mb},
                     {"running", Json(std::move(running))},
                     {"last_heartbeat_ms_ago", seen ? Json(now - w.last_heartbeat_ms) : Json()}});
  }
  return out;
}

Status Scheduler::RegisterDataset(const std::string& name, const Json& dataset,
                                  const std::string& actor) {
  MAESTRO_ASSIGN_OR_RETURN(
      Json record, DatasetRecord(name, dataset, options_.data_roots, clock_->WallMs(), actor));
  std::lock_guard<std::mutex> lock(mutex_);
  Change change;
  change.SetActor(actor);
  change.PutDataset(record);
  change.AddEvent(Json(Json::Object{{"kind", "dataset_registered"}, {"dataset", name}}));
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  catalogue_.PutDataset(name, std::move(record));
  return OkStatus();
}

std::vector<Json> Scheduler::ListDatasets() {
  std::lock_guard<std::mutex> lock(mutex_);
  return catalogue_.Datasets();
}

std::vector<Json> Scheduler::Events(int64_t from) { return store_->Events(from); }

// ---------------------------------------------------------------------------------------------
// Workers: maestro's worker daemons, the backend that reports through heartbeats and exits

bool Scheduler::IsCurrent(const TrialRecord& trial, const std::string& worker,
                          int64_t attempt) const {
  if (!IsActive(trial.state) || trial.attempt != attempt) return false;
  const auto gang = trial.Workers();
  return std::find(gang.begin(), gang.end(), worker) != gang.end();
}

Result<RegisterOutcome> Scheduler::RegisterWorker(const WorkerRegistration& r) {
  if (r.protocol_version != kWorkerProtocolVersion) {
    return FailedPreconditionError(
        "worker '" + r.id + "' speaks worker protocol " + std::to_string(r.protocol_version) +
        " (build " + r.build + "), this coordinator speaks " +
        std::to_string(kWorkerProtocolVersion) + ": run the same maestro version on both");
  }
  if (r.id.empty()) return InvalidArgumentError("worker_id: empty");
  if (slurm_ != nullptr && !IsSlurmWorkerId(r.id)) {
    return FailedPreconditionError("worker '" + r.id +
                                   "': this coordinator runs each attempt as a Slurm job "
                                   "(--backend slurm) and takes no standing worker");
  }
  if (r.slots <= 0) return InvalidArgumentError("resources.slots: a worker offers at least 1");
  std::lock_guard<std::mutex> lock(mutex_);
  Change change;
  change.SetActor(r.actor);
  Lifecycle life(change, clock_->WallMs());
  bool replaced = false;
  WorkerState& worker = workers_.StartSession(r, RandomHexId(), clock_->SteadyMs(), replaced);
  RegisterOutcome out;
  out.session = worker.session;
  out.heartbeat_interval_ms = options_.heartbeat_interval_ms;
  out.worker_timeout_ms = options_.worker_timeout_ms;
  std::set<AttemptRef> listed(r.running.begin(), r.running.end());
  std::set<AttemptRef> adopted;
  // Launches still waiting for this worker (a Slurm job's worker registering for the first
  // time, or a worker back before its answer came): delivered with its next heartbeat.
  std::set<AttemptRef> awaiting = workers_.PendingLaunches(worker);
  for (const AttemptRef& ref : listed) {
    auto it = trials_.find(ref.trial);
    if (it != trials_.end() && IsCurrent(it->second, r.id, ref.attempt)) {
      adopted.insert(ref);
      Applied(life.Adopt(it->second, r.id));
    } else if (it != trials_.end() && it->second.state == TrialState::kQueued &&
               it->second.attempt == ref.attempt && it->second.worker == r.id) {
      // Declared lost with this worker and not placed anywhere since: the trainer lives on,
      // so it is adopted again and the restart it was charged is given back.
      TrialRecord& trial = it->second;
      Dequeue(trial);
      Applied(life.Adopt(trial, r.id));
      running_[ref.trial] = Running{};
      adopted.insert(ref);
    } else {
      out.kill.push_back(ref);
    }
  }
  for (const AttemptRef& ref : adopted) {
    if (awaiting.erase(ref) > 0) workers_.DropPendingLaunch(worker, ref);  // it runs it already
  }
  // Trials this worker held that it no longer runs (it restarted): their attempts failed.
  for (const AttemptRef& ref : std::set<AttemptRef>(worker.running)) {
    if (adopted.count(ref) || awaiting.count(ref)) continue;
    TrialRecord& trial = trials_.at(ref.trial);
    if (!IsCurrent(trial, r.id, ref.attempt)) continue;
    EndAttemptFailed(trial, "worker_lost",
                     "worker " + r.id + " registered again without this trainer (it restarted)",
                     AttemptEnd::kRetryable, life);
  }
  worker.running = adopted;
  worker.running.insert(awaiting.begin(), awaiting.end());
  worker.session_attempts = worker.running;
  for (const AttemptRef& ref : out.kill) worker.session_refused.insert(ref);
  if (!IsSlurmWorkerId(r.id)) {  // a Slurm job's worker lives as long as its attempt
    change.PutWorker(Json(Json::Object{{"id", r.id},
                                       {"build", r.build},
                                       {"address", r.address},
                                       {"slots", r.slots},
                                       {"cpu_cores", r.cpu_cores},
                                       {"memory_mb", r.memory_mb}}));
  }
  change.AddEvent(Json(Json::Object{{"kind", "worker_registered"},
                                    {"worker", r.id},
                                    {"replaced_session", replaced},
                                    {"adopted", static_cast<int64_t>(adopted.size())},
                                    {"killed", static_cast<int64_t>(out.kill.size())},
                                    {"time_ms", clock_->WallMs()}}));
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  return out;
}

ResourceUse Scheduler::UseOf(const WorkerState& worker) const {
  ResourceUse used;
  for (const auto& ref : worker.running) {
    auto trial = trials_.find(ref.trial);
    const ExperimentSpec* spec = trial != trials_.end() ? SpecOf(trial->second) : nullptr;
    used.slots += spec != nullptr ? spec->resources.slots_per_trial : 1;
    if (spec != nullptr) {
      used.cpu_cores += spec->resources.cpu_cores;
      used.memory_mb += spec->resources.memory_mb;
    }
  }
  return used;
}

Result<AttemptPlan> Scheduler::PlanOf(const TrialRecord& trial, const ExperimentSpec& spec) const {
  const Json* dataset = catalogue_.Dataset(spec.dataset);
  if (dataset == nullptr) {
    return FailedPreconditionError("dataset '" + spec.dataset + "' is no longer registered");
  }
  MAESTRO_ASSIGN_OR_RETURN(
      AttemptPlan plan,
      PlanAttempt(trial, spec, *dataset, {options_.runs_dir, options_.grace_period_ms}));
  if (slurm_) plan.nodes = spec.resources.nodes;  // one worker starts every node's ranks
  return plan;
}

Status Scheduler::CheckRunnable(int64_t id, const Json& experiment) const {
  if (catalogue_.Spec(id) != nullptr) return OkStatus();
  return FailedPreconditionError("experiment " + std::to_string(id) + " " +
                                 experiment.StringOr("refused", "cannot be run") +
                                 ": submit it again");
}

std::optional<AttemptPlan> Scheduler::AssignAttempt(TrialRecord& trial, const ExperimentSpec& spec,
                                                    const std::vector<std::string>& gang,
                                                    Lifecycle& life) {
  const auto names = StageNames(spec);
  const int64_t queue_wait_ms = clock_->WallMs() - trial.queued_at_ms;
  const std::string stage_name =
      trial.stage >= 0 && trial.stage < static_cast<int64_t>(names.size())
          ? names[static_cast<size_t>(trial.stage)]
          : "stage " + std::to_string(trial.stage);
  Applied(life.Assign(
      trial, gang,
      {{"stage", stage_name}, {"resume", trial.stage_runs > 0}, {"queue_wait_ms", queue_wait_ms}}));
  auto plan = PlanOf(trial, spec);
  if (!plan.ok()) {
    Applied(life.Fail(trial, "cannot_start", plan.status().ToString(),
                      "cannot start: " + plan.status().ToString()));
    return std::nullopt;
  }
  queue_waits_s_.push_back(static_cast<double>(queue_wait_ms) / 1000.0);
  running_[trial.id] = Running{};
  return std::move(*plan);
}

void Scheduler::ScheduleOnSlurm(Lifecycle& life) {
  std::map<int64_t, int64_t> running_per_experiment;
  for (const auto& [id, unused] : running_) ++running_per_experiment[trials_.at(id).experiment];
  int64_t jobs = slurm_->Active();
  for (auto it = queue_.begin(); it != queue_.end() && jobs < options_.slurm.max_jobs;) {
    TrialRecord& trial = trials_.at(std::get<2>(*it));
    const ExperimentSpec* spec = SpecOf(trial);
    if (spec == nullptr ||
        (spec->max_concurrent_trials > 0 &&
         running_per_experiment[trial.experiment] >= spec->max_concurrent_trials)) {
      ++it;
      continue;
    }
    it = queue_.erase(it);
    // The attempt's own worker: the one its batch job starts (the attempt Assign gives it).
    const std::string worker = SlurmWorkerId({trial.id, trial.attempt + 1});
    std::optional<AttemptPlan> plan = AssignAttempt(trial, *spec, {worker}, life);
    if (!plan) continue;
    backend_->Launch({worker}, {std::move(*plan)});
    ++running_per_experiment[trial.experiment];
    ++jobs;
  }
}

void Scheduler::Schedule(WorkerState& worker, int64_t free_slots, Lifecycle& life) {
  std::map<int64_t, int64_t> running_per_experiment;
  for (const auto& [id, unused] : running_) ++running_per_experiment[trials_.at(id).experiment];
  for (auto it = queue_.begin(); it != queue_.end() && free_slots > 0;) {
    const int64_t id = std::get<2>(*it);
    TrialRecord& trial = trials_.at(id);
    const ExperimentSpec* spec = SpecOf(trial);
    if (spec == nullptr ||
        (spec->max_concurrent_trials > 0 &&
         running_per_experiment[trial.experiment] >= spec->max_concurrent_trials) ||
        !Fits(worker, UseOf(worker), spec->resources)) {
      ++it;
      continue;
    }
    // A multi-node trial takes this worker as node 0 and the first others that fit, at once.
    std::vector<WorkerState*> gang = {&worker};
    for (auto& [other_id, other] : workers_.workers()) {
      if (static_cast<int64_t>(gang.size()) >= spec->resources.nodes) break;
      if (other_id != worker.id && other.alive && other.confirmed &&
          Fits(other, UseOf(other), spec->resources)) {
        gang.push_back(&other);
      }
    }
    if (static_cast<int64_t>(gang.size()) < spec->resources.nodes) {
      ++it;
      continue;
    }
    it = queue_.erase(it);
    std::vector<std::string> gang_ids;
    for (const WorkerState* w : gang) gang_ids.push_back(w->id);
    std::optional<AttemptPlan> plan = AssignAttempt(trial, *spec, gang_ids, life);
    if (!plan) continue;
    // One plan per node: rank 0's worker serves a gang's rendezvous.
    std::vector<AttemptPlan> plans(gang.size(), *plan);
    if (gang.size() > 1) {
      for (size_t node = 0; node < gang.size(); ++node) {
        plans[node].nodes = static_cast<int64_t>(gang.size());
        plans[node].node_rank = static_cast<int64_t>(node);
        plans[node].master_addr = worker.address.empty() ? "127.0.0.1" : worker.address;
        plans[node].master_port = 20000 + (id * 131 + plan->attempt * 7) % 20000;
      }
    }
    backend_->Launch(gang_ids, std::move(plans));
    ++running_per_experiment[trial.experiment];
    free_slots -= spec->resources.slots_per_trial;
  }
}

Result<HeartbeatOutcome> Scheduler::Heartbeat(const std::string& worker_id,
                                              const std::string& session,
                                              const std::vector<AttemptProgress>& progress,
                                              const std::vector<LogPiece>& logs, int64_t free_slots,
                                              const std::vector<AttemptRef>& held) {
  HeartbeatOutcome out;
  std::lock_guard<std::mutex> lock(mutex_);
  WorkerState* found = workers_.Session(worker_id, session);
  if (found == nullptr) {
    out.reregister = true;
    return out;
  }
  WorkerState& worker = *found;
  // Everything named must be this session's before anything changes.
  for (const auto& p : progress) {
    if (!worker.Heard({p.trial, p.attempt})) {
      return PermissionDeniedError("progress of trial " + std::to_string(p.trial) + " attempt " +
                                   std::to_string(p.attempt) + ": worker '" + worker_id +
                                   "' does not hold that attempt");
    }
  }
  for (const auto& piece : logs) {
    if (!worker.Heard({piece.trial, piece.attempt})) {
      return PermissionDeniedError("log of trial " + std::to_string(piece.trial) + " attempt " +
                                   std::to_string(piece.attempt) + ": worker '" + worker_id +
                                   "' does not hold that attempt");
    }
  }
  Change change;
  change.SetActor(worker_id);
  Lifecycle life(change, clock_->WallMs());
  // Assignments an earlier answer carried that the worker does not hold: that answer was lost.
  for (const AttemptRef& ref : workers_.Beat(worker, held, clock_->SteadyMs())) {
    TrialRecord& trial = trials_.at(ref.trial);
    if (IsCurrent(trial, worker_id, ref.attempt)) {
      EndAttemptFailed(trial, "assignment_lost", "the assignment never reached worker " + worker_id,
                       AttemptEnd::kLost, life);
    }
  }
  for (const auto& p : progress) {
    auto it = trials_.find(p.trial);
    if (it == trials_.end() || !IsCurrent(it->second, worker_id, p.attempt)) {
      out.kill.push_back({p.trial, p.attempt});  // stale: its replacement may be running
      continue;
    }
    TrialRecord& trial = it->second;
    if (trial.state == TrialState::kAssigned) Applied(life.Start(trial, worker_id));
    Running& running = running_[p.trial];
    if (p.step > 0) {
      running.progress = p;
      running.has_progress = true;
      if (p.step != running.last_stored_step) {
        running.last_stored_step = p.step;
        change.AddMetric(p.trial, p.attempt, p.step,
                         Json(Json::Object{{"step", p.step},
                                           {"loss", p.loss},
                                           {"lr", p.lr},
                                           {"images_per_s", p.images_per_second},
                                           {"stage", p.stage},
                                           {"time_ms", clock_->WallMs()}}));
      }
    }
  }
  for (const auto& piece : logs) {
    auto it = trials_.find(piece.trial);
    if (it == trials_.end() || piece.attempt > it->second.attempt) continue;
    if (worker.session_attempts.count({piece.trial, piece.attempt}) == 0 ||
        (!it->second.gang.empty() && it->second.worker != worker_id)) {
      // A trainer refused at registration (being killed), or a gang's other node (rank 0
      // prints; the others keep their logs on their workers): acknowledged, not stored.
      out.log_acks.push_back(
          {piece.trial, piece.attempt, piece.offset + static_cast<int64_t>(piece.data.size()), ""});
      continue;
    }
    out.log_acks.push_back({piece.trial, piece.attempt, logs_.Append(piece, change), ""});
  }
  // A Slurm job's worker runs its one attempt only (PollBackend places trials on Slurm).
  if (!slurm_ && !IsSlurmWorkerId(worker_id)) {
    Schedule(worker, std::min(free_slots, worker.slots - UseOf(worker).slots), life);
  }
  workers_.Deliver(worker, out);
  out.current.assign(worker.running.begin(), worker.running.end());
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  return out;
}

void Scheduler::ReleaseAttempt(const TrialRecord& trial) {
  backend_->Release(trial.Workers(), {trial.id, trial.attempt});
  running_.erase(trial.id);
}

void Scheduler::EndAttemptFailed(TrialRecord& trial, const std::string& cause_kind,
                                 const std::string& cause, AttemptEnd end, Lifecycle& life) {
  ReleaseAttempt(trial);
  if (trial.cancel_requested) {
    Applied(life.Cancel(trial, cause));
    return;
  }
  if (end == AttemptEnd::kPreempted) {
    Applied(life.Preempt(trial, cause));
    Enqueue(trial);
    return;
  }
  if (end == AttemptEnd::kLost) {
    Applied(life.Lose(trial, cause));
    Enqueue(trial);
    return;
  }
  const ExperimentSpec* spec = SpecOf(trial);
  const int64_t budget = spec != nullptr ? spec->max_restarts : 0;
  if (end == AttemptEnd::kPermanent) {
    Applied(life.Fail(trial, cause_kind, cause, cause));
    TellSearcher(trial.experiment, {TrialEvent::Kind::kEnded, trial.id}, life);
    return;
  }
  if (trial.restarts >= budget) {
    Applied(life.Fail(trial, cause_kind, cause,
                      "failed " + std::to_string(trial.restarts + 1) + " times (max_restarts " +
                          std::to_string(budget) + "); last: " + cause));
    TellSearcher(trial.experiment, {TrialEvent::Kind::kEnded, trial.id}, life);
    return;
  }
  Applied(life.Retry(trial, cause_kind, cause, budget));
  ++restarts_by_cause_[cause_kind];
  Enqueue(trial);
}

Status Scheduler::ReportExit(const AttemptExit& report) {
  std::lock_guard<std::mutex> lock(mutex_);
  WorkerState* reporter = workers_.Session(report.worker, report.session);
  if (reporter == nullptr) {
    return AbortedError("worker '" + report.worker +
                        "': the session is not current (register again, then report)");
  }
  if (!reporter->Heard({report.trial, report.attempt})) {
    return PermissionDeniedError("trial " + std::to_string(report.trial) + " attempt " +
                                 std::to_string(report.attempt) + ": worker '" + report.worker +
                                 "' does not hold that attempt");
  }
  auto it = trials_.find(report.trial);
  if (it == trials_.end()) return NotFoundError("no trial " + std::to_string(report.trial));
  TrialRecord& trial = it->second;
  if (!IsCurrent(trial, report.worker, report.attempt)) {
    const auto gang = trial.Workers();
    if (trial.attempt == report.attempt &&
        std::find(gang.begin(), gang.end(), report.worker) != gang.end()) {
      return FailedPreconditionError("trial " + std::to_string(report.trial) + ": attempt " +
                                     std::to_string(report.attempt) + " on '" + report.worker +
                                     "' had already ended (the trial is " +
                                     std::string(TrialStateName(trial.state)) + "; refused)");
    }
    return FailedPreconditionError("trial " + std::to_string(report.trial) + ": exit of attempt " +
                                   std::to_string(report.attempt) + " on worker '" + report.worker +
                                   "', but attempt " + std::to_string(trial.attempt) + " on '" +
                                   trial.worker + "' is current (stale, refused)");
  }
  Change change;
  change.SetActor(report.actor.empty() ? report.worker : report.actor);
  Lifecycle life(change, clock_->WallMs());
  if (report.exit_code == kExitCompleted) {
    const ExperimentSpec* spec = SpecOf(trial);
    const auto names = spec != nullptr ? StageNames(*spec) : std::vector<std::string>{};
    if (trial.stage < 0 || trial.stage >= static_cast<int64_t>(names.size())) {
      return FailedPreconditionError("trial " + std::to_string(trial.id) + ": stage " +
                                     std::to_string(trial.stage) +
                                     " is not one of its experiment's");
    }
    const std::string stage_name = names[static_cast<size_t>(trial.stage)];
    auto result = Json::Parse(report.result_json);
    Json summary = result.ok() ? ResultSummary(*result) : Json();
    ReleaseAttempt(trial);
    const bool last = trial.stage + 1 >= static_cast<int64_t>(names.size());
    if (spec->searcher.name == "asha") {
      EndAtRung(trial, *spec, stage_name, std::move(summary), report.worker, life);
    } else if (last) {
      Applied(life.Complete(trial, stage_name, std::move(summary), report.worker));
    } else if (trial.cancel_requested) {
      trial.results.as_object()[stage_name] = std::move(summary);
      Applied(life.Cancel(trial, ""));
    } else {
      Applied(life.CompleteStage(trial, stage_name, std::move(summary)));
      Enqueue(trial);
    }
  } else if (report.exit_code == kExitPermanentFailure) {
    EndAttemptFailed(trial, "permanent", "permanent failure (exit 2): " + report.cause,
                     AttemptEnd::kPermanent, life);
  } else if (report.exit_code == kExitPreempted && report.time_limit) {
    EndAttemptFailed(trial, "timeout",
                     "stopped at its Slurm job's time limit with a checkpoint (exit 3)",
                     AttemptEnd::kRetryable, life);
  } else if (report.exit_code == kExitPreempted && !report.stopped_by_request) {
    EndAttemptFailed(trial, "preempted", "preempted (exit 3)", AttemptEnd::kPreempted, life);
  } else if (report.exit_code == kExitPreempted) {
    EndAttemptFailed(trial, "stopped", "stopped on request", AttemptEnd::kPreempted, life);
  } else if (report.exit_code < 0) {
    EndAttemptFailed(trial, "signal",
                     "killed by signal " + std::to_string(report.signal) +
                         (report.cause.empty() ? "" : ": " + report.cause),
                     AttemptEnd::kRetryable, life);
  } else {
    EndAttemptFailed(trial, report.exit_code == kExitRetryableFailure ? "retryable" : "crash",
                     "exit " + std::to_string(report.exit_code) +
                         (report.cause.empty() ? "" : ": " + report.cause),
                     AttemptEnd::kRetryable, life);
  }
  return store_->Commit(std::move(change));
}

bool Scheduler::ReachedItsRung(const TrialRecord& trial) {
  return static_cast<int64_t>(trial.rung_metrics.size()) > trial.rung;
}

void Scheduler::EndAtRung(TrialRecord& trial, const ExperimentSpec& spec,
                          const std::string& stage_name, Json summary, const std::string& worker,
                          Lifecycle& life) {
  const SearcherSpec& searcher = spec.searcher;
  auto budgets = RungBudgets(searcher);
  const bool known_rung =
      budgets.ok() && trial.rung >= 0 && trial.rung < static_cast<int64_t>(budgets->size());
  const int64_t budget = known_rung ? (*budgets)[static_cast<size_t>(trial.rung)] : 0;
  const std::string rung = "rung " + std::to_string(trial.rung) + " (" + std::to_string(budget) +
                           " " + searcher.unit + ")";
  const Json* final = summary.Find("final");
  const Json* value =
      final != nullptr && final->is_object() ? final->Find(searcher.metric) : nullptr;
  const Json* steps = summary.Find("optimizer_steps");
  std::string wrong;
  if (!known_rung) {
    wrong = "its rung " + std::to_string(trial.rung) + " is not one of the experiment's";
  } else if (value == nullptr || !value->is_number() || !std::isfinite(value->as_double())) {
    wrong =
        "it reached " + rung + " without a finite " + searcher.metric + " in its final evaluation";
  } else if (searcher.unit == "steps" &&
             (steps == nullptr || !steps->is_int() || steps->as_int() != budget)) {
    wrong = "it stopped at optimizer step " + (steps != nullptr ? steps->Dump() : "?") +
            ", not at " + rung;
  }
  if (!wrong.empty()) {
    Applied(life.Fail(trial, "permanent", wrong, wrong));
    TellSearcher(trial.experiment, {TrialEvent::Kind::kEnded, trial.id}, life);
    return;
  }
  const double metric = value->as_double();
  if (ReachedItsRung(trial)) trial.rung_metrics.resize(static_cast<size_t>(trial.rung));
  trial.rung_metrics.push_back(metric);
  trial.results.as_object()[stage_name] = summary;
  if (trial.cancel_requested) {
    Applied(life.Cancel(trial, ""));
    return;
  }
  const SearchActions actions =
      AskSearcher(trial.experiment, {TrialEvent::Kind::kRungReached, trial.id, trial.rung, metric});
  if (actions.stop) {
    Applied(life.Stop(
        trial, "stopped by asha at " + rung + ": " + searcher.metric + " " + Json(metric).Dump()));
  } else {
    Applied(life.Complete(trial, stage_name, std::move(summary), worker));
  }
  ApplyResumes(trial.experiment, actions, life);
}

SearchActions Scheduler::AskSearcher(int64_t experiment_id, const TrialEvent& event) {
  const ExperimentSpec* spec = catalogue_.Spec(experiment_id);
  const Json* experiment = catalogue_.Experiment(experiment_id);
  if (spec == nullptr || experiment == nullptr) return {};
  std::unique_ptr<SearchMethod>& method = searchers_[experiment_id];
  if (!method) {
    auto made = MakeSearchMethod(*spec);
    if (!made.ok()) {
      std::cerr << "maestro-coordinator: error: experiment " << experiment_id
                << "'s search method: " << made.status().ToString() << std::endl;
      searchers_.erase(experiment_id);
      return {};
    }
    method = std::move(*made);
  }
  std::vector<AshaTrial> view;
  for (int64_t id : ExperimentCatalogue::TrialIdsOf(*experiment)) {
    auto it = trials_.find(id);
    if (it == trials_.end() || it->second.experiment != experiment_id) continue;
    const TrialRecord& t = it->second;
    view.push_back({t.id, t.rung, t.rung_metrics, t.state == TrialState::kStopped});
  }
  return method->OnTrialEvent(event, view);
}

void Scheduler::TellSearcher(int64_t experiment_id, const TrialEvent& event, Lifecycle& life) {
  ApplyResumes(experiment_id, AskSearcher(experiment_id, event), life);
}

void Scheduler::ApplyResumes(int64_t experiment_id, const SearchActions& actions, Lifecycle& life) {
  const ExperimentSpec* spec = catalogue_.Spec(experiment_id);
  for (int64_t id : actions.resume) {
    auto it = trials_.find(id);
    if (it == trials_.end() || it->second.state != TrialState::kStopped ||
        it->second.experiment != experiment_id) {
      continue;
    }
    TrialRecord& trial = it->second;
    ++trial.rung;
    std::string why = "promoted to rung " + std::to_string(trial.rung);
    if (spec != nullptr) {
      if (auto budgets = RungBudgets(spec->searcher);
          budgets.ok() && trial.rung < static_cast<int64_t>(budgets->size())) {
        why += " (" + std::to_string((*budgets)[static_cast<size_t>(trial.rung)]) + " " +
               spec->searcher.unit + ")";
      }
    }
    Applied(life.Resume(trial, why));
    trial.queued_at_ms = clock_->WallMs();
    Enqueue(trial);
  }
}

void Scheduler::DeclareLost(WorkerState& worker, const std::string& why, Lifecycle& life,
                            Change& change) {
  workers_.MarkLost(worker);
  ++workers_declared_lost_;
  change.AddEvent(Json(Json::Object{{"kind", "worker_lost"},
                                    {"worker", worker.id},
                                    {"cause", why},
                                    {"time_ms", clock_->WallMs()}}));
  for (const AttemptRef& ref : std::set<AttemptRef>(worker.running)) {
    TrialRecord& trial = trials_.at(ref.trial);
    if (!IsCurrent(trial, worker.id, ref.attempt)) continue;
    EndAttemptFailed(trial, "worker_lost", "worker " + worker.id + " lost: " + why,
                     AttemptEnd::kRetryable, life);
  }
  worker.running.clear();
}

void Scheduler::EndGoneAttempts(const SlurmBackend::PollResult& polled, Lifecycle& life,
                                Change& change) {
  for (Json event : polled.events) {
    event.as_object()["time_ms"] = Json(clock_->WallMs());
    change.AddEvent(std::move(event));
  }
  for (const AttemptGone& gone : polled.gone) {
    auto it = trials_.find(gone.ref.trial);
    if (it == trials_.end() || !IsCurrent(it->second, gone.worker, gone.ref.attempt)) continue;
    // Its worker, if it registered, went with the job.
    if (WorkerState* worker = workers_.Find(gone.worker); worker != nullptr && worker->alive) {
      workers_.MarkLost(*worker);
    }
    const std::string job = "Slurm job " + (gone.job_id.empty() ? "(none)" : gone.job_id);
    TrialRecord& trial = it->second;
    switch (gone.end) {
      case SlurmEnd::kPreempted:
        EndAttemptFailed(trial, "preempted", job + " was preempted", AttemptEnd::kPreempted, life);
        break;
      case SlurmEnd::kTimeout:
        EndAttemptFailed(trial, "timeout", job + " reached its time limit (" + gone.state + ")",
                         AttemptEnd::kRetryable, life);
        break;
      case SlurmEnd::kNodeFailure:
        EndAttemptFailed(trial, "worker_lost", job + ": a node failed (" + gone.state + ")",
                         AttemptEnd::kRetryable, life);
        break;
      default:
        EndAttemptFailed(
            trial, "crash",
            job + " ended (" + gone.state + ") before its worker reported the attempt's exit",
            AttemptEnd::kRetryable, life);
    }
  }
  for (const std::string& id : polled.finished_workers) workers_.Forget(id);
}

void Scheduler::PollBackend() {
  if (!slurm_) return;
  const SlurmBackend::PollResult polled = slurm_->Poll();  // Slurm's commands, without the lock
  std::lock_guard<std::mutex> lock(mutex_);
  Change change;
  change.SetActor("coordinator");
  Lifecycle life(change, clock_->WallMs());
  EndGoneAttempts(polled, life, change);
  ScheduleOnSlurm(life);
  CommitOrLog(std::move(change));
}

void Scheduler::Tick() {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t now = clock_->SteadyMs();
  Change change;
  change.SetActor("coordinator");
  Lifecycle life(change, clock_->WallMs());
  for (WorkerState* worker : workers_.Silent(now, options_.worker_timeout_ms)) {
    const int64_t silent = now - worker->last_heartbeat_ms;
    DeclareLost(*worker,
                worker->confirmed ? "no heartbeat for " + std::to_string(silent) + " ms"
                                  : "did not register again within " +
                                        std::to_string(options_.worker_timeout_ms) +
                                        " ms of the coordinator's restart",
                life, change);
  }
  CommitOrLog(std::move(change));
}

SchedulerSnapshot Scheduler::Snapshot() {
  std::lock_guard<std::mutex> lock(mutex_);
  SchedulerSnapshot s;
  for (TrialState state : kAllTrialStates)
    s.trials_by_state[std::string(TrialStateName(state))] = 0;
  for (const auto& [id, trial] : trials_)
    ++s.trials_by_state[std::string(TrialStateName(trial.state))];
  for (const auto& [id, worker] : workers_.workers()) {
    if (worker.alive && worker.confirmed) {
      ++s.workers_alive;
      s.slots_total += worker.slots;
      s.slots_in_use += UseOf(worker).slots;
    } else if (!worker.alive) {
      ++s.workers_lost;
    }
  }
  s.restarts_by_cause = restarts_by_cause_;
  s.workers_declared_lost = workers_declared_lost_;
  s.queue_waits_s.swap(queue_waits_s_);
  for (const auto& [id, running] : running_) {
    SchedulerSnapshot::Running r;
    r.trial = id;
    r.experiment = trials_.at(id).experiment;
    r.has_progress = running.has_progress;
    r.step = running.progress.step;
    r.loss = running.progress.loss;
    r.lr = running.progress.lr;
    r.images_per_second = running.progress.images_per_second;
    s.running.push_back(r);
  }
  return s;
}

}  // namespace maestro::coordinator
