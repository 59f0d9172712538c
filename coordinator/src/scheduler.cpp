#include "maestro/coordinator/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "maestro/coordinator/searcher.h"
#include "maestro/shared/config_tree.h"
#include "maestro/shared/exit_status.h"
#include "maestro/shared/ids.h"

namespace maestro::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t IntOr(const Json& object, std::string_view key, int64_t fallback) {
  const Json* value = object.Find(key);
  return value != nullptr && value->is_int() ? value->as_int() : fallback;
}

std::string StringOr(const Json& object, std::string_view key, const std::string& fallback = "") {
  const Json* value = object.Find(key);
  return value != nullptr && value->is_string() ? value->as_string() : fallback;
}

bool IsActive(const std::string& state) { return state == "assigned" || state == "running"; }

Json Event(const std::string& kind, const Json& trial, Json::Object detail = {}) {
  detail["kind"] = Json(kind);
  detail["trial"] = *trial.Find("id");
  detail["experiment"] = *trial.Find("experiment");
  detail["attempt"] = *trial.Find("attempt");
  detail["time_ms"] = Json(NowMs());
  return Json(std::move(detail));
}

// What a results table needs of a stage's result.json (the full record stays on disk).
Json ResultSummary(const Json& result) {
  Json::Object out;
  for (const char* key : {"job", "optimizer_steps", "final_train_loss", "final", "checkpoint"}) {
    if (const Json* value = result.Find(key)) out[key] = *value;
  }
  return Json(std::move(out));
}

// Whether a stored experiment names its trainer config (or an evaluation's) by a file path.
bool NamesConfigFile(const Json& spec) {
  const Json* config = spec.Find("config");
  if (config != nullptr && config->is_string()) return true;
  const Json* evaluations = spec.Find("evaluations");
  if (evaluations == nullptr || !evaluations->is_array()) return false;
  for (const Json& item : evaluations->as_array()) {
    const Json* c = item.is_object() ? item.Find("config") : nullptr;
    if (c != nullptr && c->is_string()) return true;
  }
  return false;
}

}  // namespace

Scheduler::Scheduler(std::unique_ptr<Store> store, SchedulerOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}
Scheduler::~Scheduler() = default;

Result<std::unique_ptr<Scheduler>> Scheduler::Open(std::unique_ptr<Store> store,
                                                   SchedulerOptions options) {
  if (options.runs_dir.empty() || options.runs_dir.front() != '/') {
    return InvalidArgumentError("the runs folder must be an absolute path, not '" +
                                options.runs_dir + "'");
  }
  std::unique_ptr<Scheduler> scheduler(new Scheduler(std::move(store), std::move(options)));
  MAESTRO_RETURN_IF_ERROR(scheduler->Load());
  return scheduler;
}

Status Scheduler::Load() {
  std::map<int64_t, std::string> refused;
  for (Json& experiment : store_->Experiments()) {
    const int64_t id = experiment.Find("id")->as_int();
    const Json& stored = *experiment.Find("spec");
    auto spec = ParseExperiment(stored);
    if (spec.ok()) {
      specs_.emplace(id, std::move(*spec));
    } else if (NamesConfigFile(stored)) {
      // Stored by an older coordinator, which read config paths on its own host: never read
      // now, and never a reason not to start.
      if (StringOr(experiment, "state") != "canceled") refused[id] = spec.status().message();
    } else {
      return DataLossError("stored experiment " + std::to_string(id) +
                           " no longer parses: " + spec.status().message());
    }
    experiments_.emplace(id, std::move(experiment));
  }
  for (Json& dataset : store_->Datasets()) {
    datasets_.emplace(dataset.Find("name")->as_string(), std::move(dataset));
  }
  const auto now = Clock::now();
  for (Json& trial : store_->Trials()) {
    const int64_t id = trial.Find("id")->as_int();
    const std::string state = trial.Find("state")->as_string();
    if (state == "queued") {
      if (const ExperimentSpec* spec = SpecOf(trial))
        queue_.insert({-spec->resources.priority, id});
    } else if (IsActive(state)) {
      // Its workers have until the timeout to register again and list it; else they are lost.
      for (const std::string& worker_id : GangOf(trial)) {
        Worker& worker = workers_[worker_id];
        worker.id = worker_id;
        worker.alive = true;
        worker.last_heartbeat = now;
        worker.running.insert({id, trial.Find("attempt")->as_int()});
      }
      running_[id] = Running{};
    }
    trials_.emplace(id, std::move(trial));
  }
  for (const Json& stored : store_->Workers()) {
    Worker& worker = workers_[stored.Find("id")->as_string()];
    worker.id = stored.Find("id")->as_string();
    worker.build = StringOr(stored, "build");
    worker.address = StringOr(stored, "address");
    worker.slots = IntOr(stored, "slots", 0);
    worker.cpu_cores = IntOr(stored, "cpu_cores", 0);
    worker.memory_mb = IntOr(stored, "memory_mb", 0);
  }
  for (const auto& [id, why] : refused) RefuseStoredExperiment(id, why);
  return OkStatus();
}

void Scheduler::RefuseStoredExperiment(int64_t id, const std::string& why) {
  const std::string message = "refused at load: " + why +
                              "; its unfinished trials are canceled (submit the experiment "
                              "again: `maestro experiment create FILE` sends its configs inline)";
  std::cerr << "maestro-coordinator: experiment " << id << " " << message << std::endl;
  Json& experiment = experiments_.at(id);
  experiment.as_object()["state"] = Json("canceled");
  experiment.as_object()["refused"] = Json(message);
  Change change;
  change.SetActor("coordinator");
  change.PutExperiment(experiment);
  change.AddEvent(Json(Json::Object{{"kind", "experiment_refused"},
                                    {"experiment", id},
                                    {"message", message},
                                    {"time_ms", NowMs()}}));
  for (const Json& t : experiment.Find("trials")->as_array()) {
    auto it = trials_.find(t.as_int());
    if (it == trials_.end() || it->second.Find("experiment")->as_int() != id) continue;
    Json& trial = it->second;
    const std::string state = trial.Find("state")->as_string();
    if (state != "queued" && !IsActive(state)) continue;
    // An active one's trainer is stopped when its worker lists it again (no longer current).
    running_.erase(t.as_int());
    for (auto& [worker_id, worker] : workers_) {
      worker.running.erase({t.as_int(), IntOr(trial, "attempt", 0)});
    }
    trial.as_object()["state"] = Json("canceled");
    change.PutTrial(trial);
    change.AddEvent(Event("trial_canceled", trial,
                          {{"cause", "experiment " + std::to_string(id) + " " + message}}));
  }
  CommitOrLog(std::move(change));
}

const ExperimentSpec* Scheduler::SpecOf(const Json& trial) const {
  auto it = specs_.find(trial.Find("experiment")->as_int());
  return it == specs_.end() ? nullptr : &it->second;
}

std::vector<std::string> Scheduler::StageNames(const ExperimentSpec& spec) const {
  std::vector<std::string> names = {spec.train_job()};
  for (size_t i = 0; i < spec.evaluations.size(); ++i) {
    std::string name = spec.evaluations[i].kind;
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      name.append("-").append(std::to_string(i + 1));
    }
    names.push_back(name);
  }
  return names;
}

Json& Scheduler::TrialRef(int64_t id) { return trials_.at(id); }

void Scheduler::CommitOrLog(Change change) {
  if (Status s = store_->Commit(std::move(change)); !s.ok()) {
    // The in-memory state ran ahead of the disk: a restart reloads the last committed state
    // (attempts only move forward, so nothing assigned twice survives).
    std::cerr << "maestro-coordinator: error: " << s.ToString() << std::endl;
  }
}

// ---------------------------------------------------------------------------------------------
// Users

namespace {

// Trainer config keys the coordinator sets for every trial: where its data comes from (the
// registered dataset) and where it writes (under the runs folder). A hyperparameter over one
// of them is refused; a base config's value is replaced.
const char* const kPlacedKeys[] = {"data.source",  "data.path",      "data.service",
                                   "data.dataset", "run.output_dir", "checkpoint.dir"};

}  // namespace

Status Scheduler::CheckTrialInputs(const ExperimentSpec& spec) const {
  const std::string no_service =
      ": a trial config cannot name a data service: every trial reads the experiment's "
      "registered dataset ('" +
      spec.dataset + "')";
  if (FindConfigValue(spec.config, "data.service") != nullptr) {
    return InvalidArgumentError("config.data.service" + no_service);
  }
  for (size_t i = 0; i < spec.evaluations.size(); ++i) {
    if (FindConfigValue(spec.evaluations[i].config, "data.service") != nullptr) {
      return InvalidArgumentError("evaluations[" + std::to_string(i) + "].config.data.service" +
                                  no_service);
    }
  }
  PathRoots weights = options_.data_roots;
  auto runs = PathRoots::Make({options_.runs_dir}, "--runs", false);
  if (runs.ok()) weights.Add(*runs);
  auto check_weights = [&](const std::string& key, const Json& value) -> Status {
    if (!value.is_string()) return InvalidArgumentError(key + ": a path is required");
    if (value.as_string() == "none") return OkStatus();
    return weights.Check(key, value.as_string(), false);
  };
  for (const auto& h : spec.hyperparameters) {
    for (const char* placed : kPlacedKeys) {
      if (h.key == placed) {
        return InvalidArgumentError("hyperparameters." + h.key +
                                    ": set by the coordinator for every trial (the registered "
                                    "dataset, the runs folder); it cannot be searched");
      }
    }
    if (h.key == "classify.pretrained") {
      if (h.type == "const") {
        MAESTRO_RETURN_IF_ERROR(check_weights("hyperparameters.classify.pretrained", h.val));
      } else {
        for (const Json& v : h.vals) {
          MAESTRO_RETURN_IF_ERROR(check_weights("hyperparameters.classify.pretrained", v));
        }
      }
    }
  }
  // A pipeline's evaluations probe its own pretraining's checkpoint (set per trial).
  if (spec.kind != "pipeline") {
    if (const Json* pretrained = FindConfigValue(spec.config, "classify.pretrained")) {
      MAESTRO_RETURN_IF_ERROR(check_weights("config.classify.pretrained", *pretrained));
    }
  }
  return OkStatus();
}

Result<CreatedExperiment> Scheduler::CreateExperiment(const Json& tree,
                                                      const std::string& idempotency_key,
                                                      const std::string& actor) {
  MAESTRO_ASSIGN_OR_RETURN(ExperimentSpec spec, ParseExperiment(tree));
  MAESTRO_RETURN_IF_ERROR(CheckTrialInputs(spec));
  // The trials and their identities (each trial's config checked against the trainer's
  // schema) are made before the lock: heartbeats never wait for a large grid.
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<SearchMethod> search, MakeSearchMethod(spec));
  std::vector<NewTrial> trials;
  for (const auto& trial : search->Start()) {
    auto identity = TrialIdentity(spec, trial.hparams);
    if (!identity.ok()) {
      return identity.status().WithContext("trial " + std::to_string(trial.ordinal));
    }
    trials.push_back({*identity, trial.hparams});
  }
  if (trials.empty()) return InvalidArgumentError("hyperparameters: the experiment has no trials");
  std::lock_guard<std::mutex> lock(mutex_);
  if (!datasets_.count(spec.dataset)) {
    std::string known;
    for (const auto& [name, unused] : datasets_) known += (known.empty() ? "" : ", ") + name;
    return NotFoundError("dataset: unknown dataset '" + spec.dataset +
                         "' (registered: " + (known.empty() ? "none" : known) +
                         "; add it with `maestro dataset register`)");
  }
  int64_t max_slots = 0, max_cores = 0, max_memory = 0;
  for (const auto& [id, worker] : workers_) {
    max_slots = std::max(max_slots, worker.slots);
    max_cores = std::max(max_cores, worker.cpu_cores);
    max_memory = std::max(max_memory, worker.memory_mb);
  }
  if (max_slots > 0) {  // with no worker known yet, nothing can be judged
    if (spec.resources.slots_per_trial > max_slots) {
      return InvalidArgumentError(
          "resources.slots_per_trial: " + std::to_string(spec.resources.slots_per_trial) +
          " slots per trial, but the largest worker has " + std::to_string(max_slots) +
          " (a trial runs on one worker: multi-node gang placement is not built yet)");
    }
    if (spec.resources.nodes > static_cast<int64_t>(workers_.size())) {
      return InvalidArgumentError("resources.nodes: " + std::to_string(spec.resources.nodes) +
                                  " nodes per trial, but " + std::to_string(workers_.size()) +
                                  " worker(s) are known: the gang could never be placed");
    }
    if (spec.resources.cpu_cores > max_cores) {
      return InvalidArgumentError(
          "resources.cpu_cores: " + std::to_string(spec.resources.cpu_cores) +
          " cores per trial, but the largest worker has " + std::to_string(max_cores) +
          ": no trial could ever run");
    }
    if (spec.resources.memory_mb > max_memory) {
      return InvalidArgumentError(
          "resources.memory_mb: " + std::to_string(spec.resources.memory_mb) +
          " MB per trial, but the largest worker has " + std::to_string(max_memory) +
          ": no trial could ever run");
    }
  }
  Json record(Json::Object{{"name", spec.name},
                           {"kind", spec.kind},
                           {"dataset", spec.dataset},
                           {"spec", tree},
                           {"created_ms", NowMs()},
                           {"created_by", actor}});
  MAESTRO_ASSIGN_OR_RETURN(CreatedExperiment created,
                           store_->CreateExperiment(record, trials, idempotency_key));
  if (created.existed) return created;
  MAESTRO_ASSIGN_OR_RETURN(Json stored, store_->Experiment(created.id));
  experiments_[created.id] = stored;
  specs_.emplace(created.id, std::move(spec));
  const int64_t priority = specs_.at(created.id).resources.priority;
  Change change;
  change.SetActor(actor);
  for (int64_t id : created.trials) {
    if (auto known = trials_.find(id); known != trials_.end()) {
      // Shared with an earlier experiment: a completed or live cell is never rerun; a failed
      // or canceled one runs again, now under this experiment's settings.
      Json& trial = known->second;
      const std::string state = trial.Find("state")->as_string();
      if (state != "failed" && state != "canceled") continue;
      auto& object = trial.as_object();
      object["experiment"] = Json(created.id);
      object["restarts"] = Json(0);
      object.erase("cancel_requested");
      object.erase("cause");
      Requeue(trial);
      change.PutTrial(trial);
      change.AddEvent(
          Event("trial_requeued", trial, {{"cause", "submitted again after " + state}}));
      continue;
    }
    MAESTRO_ASSIGN_OR_RETURN(Json trial, store_->Trial(id));
    trial.as_object()["queued_at_ms"] = Json(NowMs());
    trial.as_object()["stage"] = Json(0);
    trial.as_object()["stage_runs"] = Json(0);
    trial.as_object()["restarts"] = Json(0);
    change.PutTrial(trial);
    queue_.insert({-priority, id});
    trials_.emplace(id, std::move(trial));
  }
  CommitOrLog(std::move(change));
  return created;
}

std::vector<Json> Scheduler::ListExperiments() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Json> out;
  for (const auto& [id, e] : experiments_) {
    std::map<std::string, int64_t> counts;
    const auto& ids = e.Find("trials")->as_array();
    for (const Json& t : ids) ++counts[trials_.at(t.as_int()).Find("state")->as_string()];
    std::string state = "active";
    if (StringOr(e, "state") == "canceled") {
      state = "canceled";
    } else if (counts["completed"] + counts["failed"] + counts["canceled"] ==
               static_cast<int64_t>(ids.size())) {
      state = counts["failed"] + counts["canceled"] > 0 ? "failed" : "completed";
    }
    Json::Object by_state;
    for (const auto& [s, n] : counts) by_state[s] = Json(n);
    out.emplace_back(Json::Object{{"id", id},
                                  {"name", *e.Find("name")},
                                  {"kind", *e.Find("kind")},
                                  {"dataset", *e.Find("dataset")},
                                  {"state", state},
                                  {"trials", static_cast<int64_t>(ids.size())},
                                  {"trials_by_state", Json(std::move(by_state))}});
  }
  return out;
}

Result<std::string> Scheduler::ExperimentCreator(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = experiments_.find(id);
  if (it == experiments_.end()) return NotFoundError("no experiment " + std::to_string(id));
  return StringOr(it->second, "created_by");
}

Result<std::pair<Json, std::vector<Json>>> Scheduler::DescribeExperiment(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = experiments_.find(id);
  if (it == experiments_.end()) return NotFoundError("no experiment " + std::to_string(id));
  std::vector<Json> trials;
  for (const Json& t : it->second.Find("trials")->as_array()) {
    Json trial = trials_.at(t.as_int());
    auto running = running_.find(t.as_int());
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
  return std::make_pair(it->second, std::move(trials));
}

Result<std::pair<int64_t, int64_t>> Scheduler::CancelExperiment(int64_t id,
                                                                const std::string& actor) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = experiments_.find(id);
  if (it == experiments_.end()) return NotFoundError("no experiment " + std::to_string(id));
  Change change;
  change.SetActor(actor);
  int64_t canceled = 0, stopping = 0;
  if (StringOr(it->second, "state") != "canceled") {
    it->second.as_object()["state"] = Json("canceled");
    change.PutExperiment(it->second);
    change.AddEvent(Json(
        Json::Object{{"kind", "experiment_canceled"}, {"experiment", id}, {"time_ms", NowMs()}}));
  }
  for (const Json& t : it->second.Find("trials")->as_array()) {
    Json& trial = trials_.at(t.as_int());
    if (trial.Find("experiment")->as_int() != id) continue;  // shared: its owner decides
    const std::string state = trial.Find("state")->as_string();
    if (state == "queued") {
      queue_.erase({-specs_.at(id).resources.priority, t.as_int()});
      trial.as_object()["state"] = Json("canceled");
      change.PutTrial(trial);
      change.AddEvent(Event("trial_canceled", trial));
      ++canceled;
    } else if (IsActive(state)) {
      trial.as_object()["cancel_requested"] = Json(true);
      change.PutTrial(trial);
      auto worker = workers_.find(StringOr(trial, "worker"));
      if (worker != workers_.end()) {
        worker->second.pending_kills.push_back({t.as_int(), trial.Find("attempt")->as_int()});
      }
      ++stopping;
    }
  }
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  return std::make_pair(canceled, stopping);
}

Result<TrialLogs> Scheduler::Logs(int64_t trial, int64_t offset, int64_t max_bytes) {
  std::string state;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = trials_.find(trial);
    if (it == trials_.end()) return NotFoundError("no trial " + std::to_string(trial));
    state = it->second.Find("state")->as_string();
  }
  if (offset < 0) return InvalidArgumentError("offset: negative");
  if (max_bytes <= 0) max_bytes = 1 << 20;
  TrialLogs out;
  out.state = state;
  int64_t position = 0;
  for (const LogChunkRecord& chunk : store_->Logs(trial)) {
    const int64_t size = static_cast<int64_t>(chunk.data.size());
    if (position + size > offset && static_cast<int64_t>(out.data.size()) < max_bytes) {
      const int64_t from = std::max<int64_t>(0, offset - position);
      const int64_t take =
          std::min<int64_t>(size - from, max_bytes - static_cast<int64_t>(out.data.size()));
      out.data.append(chunk.data, from, take);
    }
    position += size;
  }
  out.next_offset = std::min(offset, position) + static_cast<int64_t>(out.data.size());
  return out;
}

std::vector<Json> Scheduler::ListWorkers() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Json> out;
  const auto now = Clock::now();
  for (const auto& [id, w] : workers_) {
    Json::Array running;
    for (const auto& r : w.running) {
      running.emplace_back(Json::Object{{"trial", r.trial}, {"attempt", r.attempt}});
    }
    const bool seen = w.confirmed;
    out.emplace_back(Json::Object{
        {"id", id},
        {"state", !w.alive ? "lost"
                  : seen   ? "alive"
                           : "expected"},
        {"build", w.build},
        {"address", w.address},
        {"slots", w.slots},
        {"slots_used", SlotsUsed(w)},
        {"cpu_cores", w.cpu_cores},
        {"memory_mb", w.memory_mb},
        {"running", Json(std::move(running))},
        {"last_heartbeat_ms_ago",
         seen ? Json(static_cast<int64_t>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(now - w.last_heartbeat)
                        .count()))
              : Json()}});
  }
  return out;
}

Status Scheduler::RegisterDataset(const std::string& name, const Json& dataset,
                                  const std::string& actor) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return InvalidArgumentError("name: a dataset name is non-empty without '/', not '" + name +
                                "'");
  }
  if (!dataset.is_object()) return InvalidArgumentError("dataset_json: not a JSON object");
  const std::string path = StringOr(dataset, "path"), service = StringOr(dataset, "service");
  if (path.empty() && service.empty()) {
    return InvalidArgumentError("dataset_json: give `path` (ingested shards) or `service`");
  }
  if (!path.empty() && path.front() != '/') {
    return InvalidArgumentError("path: '" + path + "' is not absolute (workers run elsewhere)");
  }
  if (!path.empty()) MAESTRO_RETURN_IF_ERROR(options_.data_roots.Check("path", path, false));
  const Json* splits = dataset.Find("splits");
  if (splits == nullptr || !splits->is_object() || splits->as_object().empty()) {
    return InvalidArgumentError("splits: a dataset lists its splits with their content hashes");
  }
  Json record = dataset;
  record.as_object()["name"] = Json(name);
  record.as_object()["registered_ms"] = Json(NowMs());
  record.as_object()["registered_by"] = Json(actor);
  std::lock_guard<std::mutex> lock(mutex_);
  Change change;
  change.SetActor(actor);
  change.PutDataset(record);
  change.AddEvent(Json(Json::Object{{"kind", "dataset_registered"}, {"dataset", name}}));
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  datasets_[name] = std::move(record);
  return OkStatus();
}

std::vector<Json> Scheduler::ListDatasets() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Json> out;
  for (const auto& [name, d] : datasets_) out.push_back(d);
  return out;
}

std::vector<Json> Scheduler::Events(int64_t from) { return store_->Events(from); }

// ---------------------------------------------------------------------------------------------
// Workers

std::vector<std::string> Scheduler::GangOf(const Json& trial) {
  std::vector<std::string> out;
  if (const Json* gang = trial.Find("gang"); gang != nullptr && gang->is_array()) {
    for (const Json& w : gang->as_array()) out.push_back(w.as_string());
  }
  if (out.empty()) out.push_back(StringOr(trial, "worker"));
  return out;
}

bool Scheduler::IsCurrent(const Json& trial, const std::string& worker, int64_t attempt) const {
  if (!IsActive(trial.Find("state")->as_string()) || trial.Find("attempt")->as_int() != attempt) {
    return false;
  }
  const auto gang = GangOf(trial);
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
  if (r.slots <= 0) return InvalidArgumentError("resources.slots: a worker offers at least 1");
  std::lock_guard<std::mutex> lock(mutex_);
  Worker& worker = workers_[r.id];
  Change change;
  change.SetActor(r.actor);
  const bool replaced = worker.confirmed && worker.alive;
  worker.id = r.id;
  worker.session = RandomHexId();
  worker.build = r.build;
  worker.address = r.address;
  worker.slots = r.slots;
  worker.cpu_cores = r.cpu_cores;
  worker.memory_mb = r.memory_mb;
  worker.alive = true;
  worker.confirmed = true;
  worker.last_heartbeat = Clock::now();
  worker.pending_kills.clear();
  worker.beats = 0;
  worker.assigned_beat.clear();
  worker.session_attempts.clear();
  worker.session_refused.clear();
  RegisterOutcome out;
  out.session = worker.session;
  out.heartbeat_interval_ms = options_.heartbeat_interval_ms;
  out.worker_timeout_ms = options_.worker_timeout_ms;
  std::set<AttemptRef> listed(r.running.begin(), r.running.end());
  std::set<AttemptRef> adopted;
  for (const AttemptRef& ref : listed) {
    auto it = trials_.find(ref.trial);
    if (it != trials_.end() && IsCurrent(it->second, r.id, ref.attempt)) {
      adopted.insert(ref);
      change.AddEvent(Event("trial_adopted", it->second, {{"worker", r.id}}));
    } else if (it != trials_.end() && it->second.Find("state")->as_string() == "queued" &&
               it->second.Find("attempt")->as_int() == ref.attempt &&
               StringOr(it->second, "worker") == r.id) {
      // Declared lost with this worker and not placed anywhere since: the trainer lives on,
      // so it is adopted again and the restart it was charged is given back.
      Json& trial = it->second;
      if (const ExperimentSpec* spec = SpecOf(trial)) {
        queue_.erase({-spec->resources.priority, ref.trial});
      }
      trial.as_object()["state"] = Json("running");
      trial.as_object()["restarts"] = Json(std::max<int64_t>(0, IntOr(trial, "restarts", 0) - 1));
      running_[ref.trial] = Running{};
      adopted.insert(ref);
      change.PutTrial(trial);
      change.AddEvent(Event("trial_adopted", trial, {{"worker", r.id}, {"after", "worker lost"}}));
    } else {
      out.kill.push_back(ref);
    }
  }
  // Trials this worker held that it no longer runs (it restarted): their attempts failed.
  for (const AttemptRef& ref : std::set<AttemptRef>(worker.running)) {
    if (adopted.count(ref)) continue;
    Json& trial = TrialRef(ref.trial);
    if (!IsCurrent(trial, r.id, ref.attempt)) continue;
    EndAttemptFailed(trial, "worker_lost",
                     "worker " + r.id + " registered again without this trainer (it restarted)",
                     true, false, change);
  }
  worker.running = adopted;
  worker.session_attempts = adopted;
  for (const AttemptRef& ref : out.kill) worker.session_refused.insert(ref);
  change.PutWorker(Json(Json::Object{{"id", r.id},
                                     {"build", r.build},
                                     {"address", r.address},
                                     {"slots", r.slots},
                                     {"cpu_cores", r.cpu_cores},
                                     {"memory_mb", r.memory_mb}}));
  change.AddEvent(Json(Json::Object{{"kind", "worker_registered"},
                                    {"worker", r.id},
                                    {"replaced_session", replaced},
                                    {"adopted", static_cast<int64_t>(adopted.size())},
                                    {"killed", static_cast<int64_t>(out.kill.size())},
                                    {"time_ms", NowMs()}}));
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  return out;
}

bool Scheduler::Fits(const Worker& worker, const ExperimentSpec& spec) const {
  int64_t cores = 0, memory = 0;
  for (const auto& ref : worker.running) {
    if (const ExperimentSpec* other = SpecOf(trials_.at(ref.trial))) {
      cores += other->resources.cpu_cores;
      memory += other->resources.memory_mb;
    }
  }
  if (spec.resources.cpu_cores > 0 && worker.cpu_cores > 0 &&
      cores + spec.resources.cpu_cores > worker.cpu_cores) {
    return false;
  }
  if (spec.resources.memory_mb > 0 && worker.memory_mb > 0 &&
      memory + spec.resources.memory_mb > worker.memory_mb) {
    return false;
  }
  return SlotsUsed(worker) + spec.resources.slots_per_trial <= worker.slots;
}

int64_t Scheduler::SlotsUsed(const Worker& worker) const {
  int64_t used = 0;
  for (const auto& ref : worker.running) {
    const ExperimentSpec* spec = SpecOf(trials_.at(ref.trial));
    used += spec != nullptr ? spec->resources.slots_per_trial : 1;
  }
  return used;
}

int64_t Scheduler::RunningOf(int64_t experiment) const {
  int64_t n = 0;
  for (const auto& [id, unused] : running_) {
    if (trials_.at(id).Find("experiment")->as_int() == experiment) ++n;
  }
  return n;
}

Result<TrialAssignment> Scheduler::BuildAssignment(const Json& trial,
                                                   const ExperimentSpec& spec) const {
  const int64_t id = trial.Find("id")->as_int();
  const int64_t stage = IntOr(trial, "stage", 0);
  const auto names = StageNames(spec);
  TrialAssignment out;
  out.trial = id;
  out.attempt = trial.Find("attempt")->as_int();
  out.slots = spec.resources.slots_per_trial;
  out.grace_period_ms = options_.grace_period_ms;
  out.resume = IntOr(trial, "stage_runs", 0) > 0;
  Json config;
  if (stage == 0) {
    out.job = spec.train_job();
    MAESTRO_ASSIGN_OR_RETURN(config, TrialConfig(spec, *trial.Find("hparams")));
  } else {
    const EvaluationSpec& eval = spec.evaluations.at(static_cast<size_t>(stage - 1));
    out.job = eval.kind;
    config = eval.config;
    const Json* results = trial.Find("results");
    const Json* pretrain = results != nullptr ? results->Find(names[0]) : nullptr;
    const Json* checkpoint = pretrain != nullptr ? pretrain->Find("checkpoint") : nullptr;
    if (checkpoint == nullptr || !checkpoint->is_string()) {
      return FailedPreconditionError("the pretraining stage recorded no final checkpoint");
    }
    MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "classify.pretrained", *checkpoint));
  }
  const Json& dataset = datasets_.at(spec.dataset);
  for (const char* placed : kPlacedKeys) EraseConfigValue(config, placed);
  MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "data.source", Json("shards")));
  const std::string path = StringOr(dataset, "path"), service = StringOr(dataset, "service");
  if (!path.empty()) MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "data.path", Json(path)));
  if (!service.empty()) {
    MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "data.service", Json(service)));
    MAESTRO_RETURN_IF_ERROR(
        SetConfigValue(config, "data.dataset", Json(StringOr(dataset, "served_as", spec.dataset))));
  }
  const std::string dir = options_.runs_dir + "/trial-" + std::to_string(id) + "/" +
                          names.at(static_cast<size_t>(stage));
  MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "run.output_dir", Json(dir)));
  MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "checkpoint.dir", Json(dir + "/checkpoints")));
  out.config = std::move(config);
  return out;
}

void Scheduler::Schedule(Worker& worker, int64_t free_slots, Change& change,
                         HeartbeatOutcome& out) {
  std::map<int64_t, int64_t> running_per_experiment;
  for (const auto& [id, unused] : running_) {
    ++running_per_experiment[trials_.at(id).Find("experiment")->as_int()];
  }
  for (auto it = queue_.begin(); it != queue_.end() && free_slots > 0;) {
    const int64_t id = it->second;
    Json& trial = TrialRef(id);
    const ExperimentSpec* spec = SpecOf(trial);
    const int64_t experiment = trial.Find("experiment")->as_int();
    if (spec == nullptr ||
        (spec->max_concurrent_trials > 0 &&
         running_per_experiment[experiment] >= spec->max_concurrent_trials) ||
        !Fits(worker, *spec)) {
      ++it;
      continue;
    }
    // A multi-node trial takes this worker as node 0 and the first others that fit, at once.
    std::vector<Worker*> gang = {&worker};
    for (auto& [other_id, other] : workers_) {
      if (static_cast<int64_t>(gang.size()) >= spec->resources.nodes) break;
      if (other_id != worker.id && other.alive && other.confirmed && Fits(other, *spec)) {
        gang.push_back(&other);
      }
    }
    if (static_cast<int64_t>(gang.size()) < spec->resources.nodes) {
      ++it;
      continue;
    }
    it = queue_.erase(it);
    auto& object = trial.as_object();
    object["attempt"] = Json(trial.Find("attempt")->as_int() + 1);
    object["state"] = Json("assigned");
    object["worker"] = Json(worker.id);
    if (gang.size() > 1) {
      Json::Array members;
      for (const Worker* w : gang) members.emplace_back(w->id);
      object["gang"] = Json(std::move(members));
    } else {
      object.erase("gang");
    }
    const int64_t queued_at = IntOr(trial, "queued_at_ms", NowMs());
    auto assignment = BuildAssignment(trial, *spec);
    if (!assignment.ok()) {
      object["state"] = Json("failed");
      object["cause"] = Json("cannot start: " + assignment.status().ToString());
      change.PutTrial(trial);
      change.AddEvent(Event("trial_failed", trial, {{"cause", *trial.Find("cause")}}));
      continue;
    }
    object["stage_runs"] = Json(IntOr(trial, "stage_runs", 0) + 1);
    change.PutTrial(trial);
    change.AddEvent(Event("trial_assigned", trial,
                          {{"worker", worker.id},
                           {"stage", assignment->job},
                           {"resume", assignment->resume},
                           {"queue_wait_ms", NowMs() - queued_at}}));
    queue_waits_s_.push_back(static_cast<double>(NowMs() - queued_at) / 1000.0);
    worker.running.insert({id, assignment->attempt});
    worker.session_attempts.insert({id, assignment->attempt});
    worker.assigned_beat[{id, assignment->attempt}] = worker.beats;
    running_[id] = Running{};
    if (gang.size() > 1) {
      assignment->nodes = static_cast<int64_t>(gang.size());
      assignment->master_addr = worker.address.empty() ? "127.0.0.1" : worker.address;
      assignment->master_port = 20000 + (id * 131 + assignment->attempt * 7) % 20000;
      for (size_t node = 1; node < gang.size(); ++node) {
        TrialAssignment other = *assignment;
        other.node_rank = static_cast<int64_t>(node);
        gang[node]->running.insert({id, assignment->attempt});
        gang[node]->session_attempts.insert({id, assignment->attempt});
        gang[node]->pending_assignments.push_back(std::move(other));
      }
    }
    ++running_per_experiment[experiment];
    free_slots -= spec->resources.slots_per_trial;
    out.assignments.push_back(std::move(*assignment));
  }
}

Result<HeartbeatOutcome> Scheduler::Heartbeat(const std::string& worker_id,
                                              const std::string& session,
                                              const std::vector<TrialProgressReport>& progress,
                                              const std::vector<LogPiece>& logs, int64_t free_slots,
                                              const std::vector<AttemptRef>& held) {
  HeartbeatOutcome out;
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = workers_.find(worker_id);
  if (found == workers_.end() || !found->second.alive || found->second.session.empty() ||
      found->second.session != session) {
    out.reregister = true;
    return out;
  }
  Worker& worker = found->second;
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
  worker.last_heartbeat = Clock::now();
  ++worker.beats;
  Change change;
  change.SetActor(worker_id);
  // Assignments an earlier answer carried that the worker does not hold: that answer was lost.
  const std::set<AttemptRef> holds(held.begin(), held.end());
  for (auto it = worker.assigned_beat.begin(); it != worker.assigned_beat.end();) {
    const AttemptRef ref = it->first;
    if (holds.count(ref) || it->second >= worker.beats) {
      it = holds.count(ref) ? worker.assigned_beat.erase(it) : std::next(it);
      continue;
    }
    it = worker.assigned_beat.erase(it);
    Json& trial = TrialRef(ref.trial);
    if (IsCurrent(trial, worker_id, ref.attempt)) {
      EndAttemptFailed(trial, "assignment_lost", "the assignment never reached worker " + worker_id,
                       true, true, change);
    }
  }
  for (const auto& p : progress) {
    auto it = trials_.find(p.trial);
    if (it == trials_.end() || !IsCurrent(it->second, worker_id, p.attempt)) {
      out.kill.push_back({p.trial, p.attempt});  // stale: its replacement may be running
      continue;
    }
    Json& trial = it->second;
    if (trial.Find("state")->as_string() == "assigned") {
      trial.as_object()["state"] = Json("running");
      change.PutTrial(trial);
      change.AddEvent(Event("trial_running", trial, {{"worker", worker_id}}));
    }
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
                                           {"time_ms", NowMs()}}));
      }
    }
  }
  for (const auto& piece : logs) {
    auto it = trials_.find(piece.trial);
    if (it == trials_.end() || piece.attempt > it->second.Find("attempt")->as_int()) continue;
    if (worker.session_attempts.count({piece.trial, piece.attempt}) == 0 ||
        (GangOf(it->second).size() > 1 && StringOr(it->second, "worker") != worker_id)) {
      // A trainer refused at registration (being killed), or a gang's other node (rank 0
      // prints): taken, not stored.
      // A gang's other nodes keep their logs on their workers (rank 0 prints): acknowledged.
      out.log_acks.push_back(
          {piece.trial, piece.attempt, piece.offset + static_cast<int64_t>(piece.data.size()), ""});
      continue;
    }
    const AttemptRef ref{piece.trial, piece.attempt};
    auto length = log_lengths_.find(ref);
    if (length == log_lengths_.end()) {
      int64_t stored = 0;
      for (const auto& chunk : store_->Logs(piece.trial)) {
        if (chunk.attempt == piece.attempt) stored = chunk.offset + chunk.data.size();
      }
      length = log_lengths_.emplace(ref, stored).first;
    }
    if (piece.offset == length->second && !piece.data.empty()) {
      change.AddLog(piece.trial, piece.attempt, piece.offset, piece.data);
      length->second += static_cast<int64_t>(piece.data.size());
    }
    out.log_acks.push_back({piece.trial, piece.attempt, length->second, ""});
  }
  out.kill.insert(out.kill.end(), worker.pending_kills.begin(), worker.pending_kills.end());
  worker.pending_kills.clear();
  for (auto& assignment : worker.pending_assignments) {  // this worker's node of a gang
    worker.assigned_beat[{assignment.trial, assignment.attempt}] = worker.beats;
    out.assignments.push_back(std::move(assignment));
  }
  worker.pending_assignments.clear();
  const int64_t free_by_count = worker.slots - SlotsUsed(worker);
  Schedule(worker, std::min(free_slots, free_by_count), change, out);
  out.current.assign(worker.running.begin(), worker.running.end());
  MAESTRO_RETURN_IF_ERROR(store_->Commit(std::move(change)));
  return out;
}

void Scheduler::ReleaseAttempt(const Json& trial) {
  const AttemptRef ref{trial.Find("id")->as_int(), trial.Find("attempt")->as_int()};
  const auto gang = GangOf(trial);
  for (const std::string& id : gang) {
    auto worker = workers_.find(id);
    if (worker == workers_.end()) continue;
    worker->second.running.erase(ref);
    // The other nodes of a gang stop with it (a node that already ended ignores this).
    if (gang.size() > 1) worker->second.pending_kills.push_back(ref);
    auto& pending = worker->second.pending_assignments;
    pending.erase(std::remove_if(pending.begin(), pending.end(),
                                 [&](const TrialAssignment& a) {
                                   return a.trial == ref.trial && a.attempt == ref.attempt;
                                 }),
                  pending.end());
  }
  running_.erase(ref.trial);
}

void Scheduler::Requeue(Json& trial) {
  trial.as_object()["state"] = Json("queued");
  trial.as_object()["queued_at_ms"] = Json(NowMs());
  if (const ExperimentSpec* spec = SpecOf(trial)) {
    queue_.insert({-spec->resources.priority, trial.Find("id")->as_int()});
  }
}

void Scheduler::EndAttemptFailed(Json& trial, const std::string& cause_kind,
                                 const std::string& cause, bool retryable, bool preempted,
                                 Change& change) {
  ReleaseAttempt(trial);
  auto& object = trial.as_object();
  if (trial.Find("cancel_requested") != nullptr) {
    object["state"] = Json("canceled");
    change.PutTrial(trial);
    change.AddEvent(Event("trial_canceled", trial, {{"cause", cause}}));
    return;
  }
  if (preempted) {
    Requeue(trial);
    change.PutTrial(trial);
    change.AddEvent(Event("trial_preempted", trial, {{"cause", cause}}));
    return;
  }
  Json::Array failures =
      trial.Find("failures") != nullptr ? trial.Find("failures")->as_array() : Json::Array{};
  failures.emplace_back(Json::Object{{"attempt", *trial.Find("attempt")},
                                     {"stage", IntOr(trial, "stage", 0)},
                                     {"cause_kind", cause_kind},
                                     {"cause", cause},
                                     {"time_ms", NowMs()}});
  object["failures"] = Json(std::move(failures));
  const ExperimentSpec* spec = SpecOf(trial);
  const int64_t restarts = IntOr(trial, "restarts", 0);
  const int64_t budget = spec != nullptr ? spec->max_restarts : 0;
  if (!retryable) {
    object["state"] = Json("failed");
    object["cause"] = Json(cause);
    change.PutTrial(trial);
    change.AddEvent(Event("trial_failed", trial, {{"cause", cause}, {"cause_kind", cause_kind}}));
    return;
  }
  if (restarts >= budget) {
    object["state"] = Json("failed");
    object["cause"] = Json("failed " + std::to_string(restarts + 1) + " times (max_restarts " +
                           std::to_string(budget) + "); last: " + cause);
    change.PutTrial(trial);
    change.AddEvent(Event("trial_failed", trial,
                          {{"cause", *trial.Find("cause")}, {"cause_kind", cause_kind}}));
    return;
  }
  object["restarts"] = Json(restarts + 1);
  ++restarts_by_cause_[cause_kind];
  Requeue(trial);
  change.PutTrial(trial);
  change.AddEvent(
      Event("trial_restarting", trial,
            {{"cause", cause}, {"cause_kind", cause_kind}, {"restarts", restarts + 1}}));
}

Status Scheduler::ReportExit(const TrialExit& report) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto reporter = workers_.find(report.worker);
  if (reporter == workers_.end() || !reporter->second.alive ||
      reporter->second.session.empty() || reporter->second.session != report.session) {
    return AbortedError("worker '" + report.worker +
                        "': the session is not current (register again, then report)");
  }
  if (!reporter->second.Heard({report.trial, report.attempt})) {
    return PermissionDeniedError("trial " + std::to_string(report.trial) + " attempt " +
                                 std::to_string(report.attempt) + ": worker '" + report.worker +
                                 "' does not hold that attempt");
  }
  auto it = trials_.find(report.trial);
  if (it == trials_.end()) return NotFoundError("no trial " + std::to_string(report.trial));
  Json& trial = it->second;
  if (!IsCurrent(trial, report.worker, report.attempt)) {
    const auto gang = GangOf(trial);
    if (trial.Find("attempt")->as_int() == report.attempt &&
        std::find(gang.begin(), gang.end(), report.worker) != gang.end()) {
      return FailedPreconditionError("trial " + std::to_string(report.trial) + ": attempt " +
                                     std::to_string(report.attempt) + " on '" + report.worker +
                                     "' had already ended (the trial is " +
                                     trial.Find("state")->as_string() + "; refused)");
    }
    return FailedPreconditionError("trial " + std::to_string(report.trial) + ": exit of attempt " +
                                   std::to_string(report.attempt) + " on worker '" + report.worker +
                                   "', but attempt " +
                                   std::to_string(trial.Find("attempt")->as_int()) + " on '" +
                                   StringOr(trial, "worker") + "' is current (stale, refused)");
  }
  Change change;
  change.SetActor(report.actor.empty() ? report.worker : report.actor);
  if (report.exit_code == kExitCompleted) {
    const ExperimentSpec* spec = SpecOf(trial);
    const auto names = StageNames(*spec);
    const int64_t stage = IntOr(trial, "stage", 0);
    auto result = Json::Parse(report.result_json);
    ReleaseAttempt(trial);
    auto& object = trial.as_object();
    Json results = trial.Find("results") != nullptr ? *trial.Find("results") : Json(Json::Object{});
    results.as_object()[names.at(static_cast<size_t>(stage))] =
        result.ok() ? ResultSummary(*result) : Json();
    object["results"] = std::move(results);
    if (stage + 1 < static_cast<int64_t>(names.size()) &&
        trial.Find("cancel_requested") == nullptr) {
      object["stage"] = Json(stage + 1);
      object["stage_runs"] = Json(0);
      change.AddEvent(Event("trial_stage_completed", trial, {{"stage", names[stage]}}));
      Requeue(trial);
    } else if (stage + 1 < static_cast<int64_t>(names.size())) {
      object["state"] = Json("canceled");
      change.AddEvent(Event("trial_canceled", trial));
    } else {
      object["state"] = Json("completed");
      object["completed_ms"] = Json(NowMs());
      change.AddEvent(Event("trial_completed", trial, {{"worker", report.worker}}));
    }
    change.PutTrial(trial);
  } else if (report.exit_code == kExitPermanentFailure) {
    EndAttemptFailed(trial, "permanent", "permanent failure (exit 2): " + report.cause, false,
                     false, change);
  } else if (report.exit_code == kExitPreempted && !report.stopped_by_request) {
    EndAttemptFailed(trial, "preempted", "preempted (exit 3)", true, true, change);
  } else if (report.exit_code == kExitPreempted) {
    EndAttemptFailed(trial, "stopped", "stopped on request", true, true, change);
  } else if (report.exit_code < 0) {
    EndAttemptFailed(trial, "signal",
                     "killed by signal " + std::to_string(report.signal) +
                         (report.cause.empty() ? "" : ": " + report.cause),
                     true, false, change);
  } else {
    EndAttemptFailed(trial, report.exit_code == kExitRetryableFailure ? "retryable" : "crash",
                     "exit " + std::to_string(report.exit_code) +
                         (report.cause.empty() ? "" : ": " + report.cause),
                     true, false, change);
  }
  return store_->Commit(std::move(change));
}

void Scheduler::DeclareLost(Worker& worker, const std::string& why, Change& change) {
  worker.alive = false;
  worker.session.clear();
  change.AddEvent(Json(Json::Object{
      {"kind", "worker_lost"}, {"worker", worker.id}, {"cause", why}, {"time_ms", NowMs()}}));
  for (const AttemptRef& ref : std::set<AttemptRef>(worker.running)) {
    Json& trial = TrialRef(ref.trial);
    if (!IsCurrent(trial, worker.id, ref.attempt)) continue;
    EndAttemptFailed(trial, "worker_lost", "worker " + worker.id + " lost: " + why, true, false,
                     change);
  }
  worker.running.clear();
}

void Scheduler::Tick() {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = Clock::now();
  Change change;
  change.SetActor("coordinator");
  for (auto& [id, worker] : workers_) {
    if (!worker.alive) continue;
    const auto silent =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - worker.last_heartbeat).count();
    if (silent > options_.worker_timeout_ms) {
      DeclareLost(worker,
                  worker.confirmed ? "no heartbeat for " + std::to_string(silent) + " ms"
                                   : "did not register again within " +
                                         std::to_string(options_.worker_timeout_ms) +
                                         " ms of the coordinator's restart",
                  change);
    }
  }
  CommitOrLog(std::move(change));
}

SchedulerSnapshot Scheduler::Snapshot() {
  std::lock_guard<std::mutex> lock(mutex_);
  SchedulerSnapshot s;
  for (const char* state : {"queued", "assigned", "running", "completed", "failed", "canceled"}) {
    s.trials_by_state[state] = 0;
  }
  for (const auto& [id, trial] : trials_) ++s.trials_by_state[trial.Find("state")->as_string()];
  for (const auto& [id, worker] : workers_) {
    if (worker.alive && worker.confirmed) {
      ++s.workers_alive;
      s.slots_total += worker.slots;
      s.slots_in_use += SlotsUsed(worker);
    } else if (!worker.alive) {
      ++s.workers_lost;
    }
  }
  s.restarts_by_cause = restarts_by_cause_;
  s.queue_waits_s.swap(queue_waits_s_);
  for (const auto& [id, running] : running_) {
    SchedulerSnapshot::Running r;
    r.trial = id;
    r.experiment = trials_.at(id).Find("experiment")->as_int();
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
