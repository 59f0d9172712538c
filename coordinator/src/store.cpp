#include "maestro/coordinator/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <cstdio>

#include "maestro/coordinator/trial_record.h"
#include "maestro/shared/rocksdb_status.h"

namespace maestro::coordinator {
namespace {

std::string Padded(int64_t value, int width) {
  char text[32];
  std::snprintf(text, sizeof(text), "%0*lld", width, static_cast<long long>(value));
  return text;
}

std::string ExperimentKey(int64_t id) { return "exp/" + Padded(id, 12); }
std::string TrialKey(int64_t id) { return "trial/" + Padded(id, 12); }
std::string EventKey(int64_t seq) { return "event/" + Padded(seq, 20); }
std::string MetricPrefix(int64_t trial) { return "metric/" + Padded(trial, 12) + "/"; }
std::string LogPrefix(int64_t trial) { return "log/" + Padded(trial, 12) + "/"; }

rocksdb::WriteOptions Synced() {
  rocksdb::WriteOptions options;
  options.sync = true;
  return options;
}

}  // namespace

void Change::PutTrial(const Json& trial) {
  puts_.emplace_back(TrialKey(trial.Find("id")->as_int()), trial.Dump());
}
void Change::PutExperiment(const Json& experiment) {
  puts_.emplace_back(ExperimentKey(experiment.Find("id")->as_int()), experiment.Dump());
}
void Change::PutWorker(const Json& worker) {
  puts_.emplace_back("worker/" + worker.Find("id")->as_string(), worker.Dump());
}
void Change::PutDataset(const Json& dataset) {
  puts_.emplace_back("dataset/" + dataset.Find("name")->as_string(), dataset.Dump());
}
void Change::AddMetric(int64_t trial, int64_t attempt, int64_t step, const Json& record) {
  puts_.emplace_back(MetricPrefix(trial) + Padded(attempt, 6) + "/" + Padded(step, 16),
                     record.Dump());
}
void Change::AddLog(int64_t trial, int64_t attempt, int64_t offset, std::string data) {
  puts_.emplace_back(LogPrefix(trial) + Padded(attempt, 6) + "/" + Padded(offset, 16),
                     std::move(data));
}
void Change::PutToken(const Json& token) {
  puts_.emplace_back("token/" + token.Find("id")->as_string(), token.Dump());
}
void Change::AddEvent(Json event) { events_.push_back(std::move(event)); }

Store::Store(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  MAESTRO_RETURN_IF_ERROR(FromRocksStatus(rocksdb::DB::Open(options, dir, &raw), "opening " + dir));
  std::unique_ptr<Store> store(new Store(std::unique_ptr<rocksdb::DB>(raw)));
  auto schema = store->GetJson("meta/schema");
  if (schema.status().code() == StatusCode::kNotFound) {
    rocksdb::WriteBatch batch;
    batch.Put("meta/schema", Json(kStoreSchemaVersion).Dump());
    batch.Put("meta/next",
              Json(Json::Object{{"experiment", 1}, {"trial", 1}, {"event", 1}}).Dump());
    MAESTRO_RETURN_IF_ERROR(FromRocksStatus(store->db_->Write(Synced(), &batch), "initializing"));
  } else if (!schema.ok()) {
    return schema.status();
  } else if (!schema->is_int() || schema->as_int() != kStoreSchemaVersion) {
    return FailedPreconditionError(dir + " holds coordinator state of schema " + schema->Dump() +
                                   "; this coordinator reads schema " +
                                   std::to_string(kStoreSchemaVersion));
  }
  return store;
}

Result<Json> Store::GetJson(const std::string& key) const {
  std::string value;
  MAESTRO_RETURN_IF_ERROR(FromRocksStatus(db_->Get(rocksdb::ReadOptions(), key, &value), key));
  auto json = Json::Parse(value);
  if (!json.ok()) return DataLossError(key + ": " + json.status().message());
  return json;
}

std::vector<Json> Store::Scan(const std::string& prefix, const std::string& from) const {
  std::vector<Json> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(from.empty() ? prefix : from); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    auto json = Json::Parse(it->value().ToStringView());
    if (json.ok()) out.push_back(std::move(*json));
  }
  return out;
}

Result<CreatedExperiment> Store::CreateExperiment(const Json& experiment,
                                                  const std::vector<NewTrial>& trials,
                                                  const std::string& idempotency_key) {
  if (!experiment.is_object()) return InvalidArgumentError("an experiment is a JSON object");
  std::lock_guard<std::mutex> lock(mutex_);
  CreatedExperiment created;
  if (!idempotency_key.empty()) {
    auto earlier = GetJson("idem/" + idempotency_key);
    if (earlier.ok()) {
      MAESTRO_ASSIGN_OR_RETURN(Json stored, GetJson(ExperimentKey(earlier->as_int())));
      created.id = earlier->as_int();
      created.existed = true;
      for (const auto& t : stored.Find("trials")->as_array()) created.trials.push_back(t.as_int());
      return created;
    }
  }
  MAESTRO_ASSIGN_OR_RETURN(Json next, GetJson("meta/next"));
  int64_t next_trial = next.Find("trial")->as_int(), next_event = next.Find("event")->as_int();
  created.id = next.Find("experiment")->as_int();
  rocksdb::WriteBatch batch;
  Json::Array trial_ids;
  PlaceTrials(trials, created, next_trial, batch, trial_ids);
  Json record = experiment;
  record.as_object()["id"] = Json(created.id);
  record.as_object()["trials"] = Json(std::move(trial_ids));
  record.as_object()["state"] = Json("active");
  batch.Put(ExperimentKey(created.id), record.Dump());
  if (!idempotency_key.empty()) batch.Put("idem/" + idempotency_key, Json(created.id).Dump());
  Json::Object event{{"seq", next_event},
                     {"kind", "experiment_created"},
                     {"experiment", created.id},
                     {"trials", static_cast<int64_t>(trials.size())},
                     {"reused", static_cast<int64_t>(created.reused.size())}};
  if (const Json* by = experiment.Find("created_by");
      by != nullptr && by->is_string() && !by->as_string().empty()) {
    event["by"] = *by;
  }
  batch.Put(EventKey(next_event), Json(std::move(event)).Dump());
  ++next_event;
  batch.Put("meta/next",
            Json(Json::Object{
                     {"experiment", created.id + 1}, {"trial", next_trial}, {"event", next_event}})
                .Dump());
  MAESTRO_RETURN_IF_ERROR(FromRocksStatus(db_->Write(Synced(), &batch), "storing the experiment"));
  return created;
}

void Store::PlaceTrials(const std::vector<NewTrial>& trials, CreatedExperiment& created,
                        int64_t& next_trial, rocksdb::WriteBatch& batch,
                        Json::Array& trial_ids) const {
  for (const auto& trial : trials) {
    auto existing = trial.shared ? GetJson("ident/" + trial.identity)
                                 : Result<Json>(NotFoundError("not shared"));
    int64_t id = 0;
    if (existing.ok()) {
      id = existing->as_int();
      created.reused.push_back(id);
    } else {
      id = next_trial++;
      TrialRecord record;
      record.id = id;
      record.experiment = created.id;
      record.identity = trial.identity;
      record.hparams = trial.hparams;
      batch.Put(TrialKey(id), record.ToJson().Dump());
      if (trial.shared) batch.Put("ident/" + trial.identity, Json(id).Dump());
    }
    created.trials.push_back(id);
    trial_ids.emplace_back(id);
  }
}

Result<CreatedExperiment> Store::ExtendExperiment(int64_t id, const Json& spec,
                                                  const std::vector<NewTrial>& trials,
                                                  const std::string& actor) {
  std::lock_guard<std::mutex> lock(mutex_);
  MAESTRO_ASSIGN_OR_RETURN(Json record, GetJson(ExperimentKey(id)));
  MAESTRO_ASSIGN_OR_RETURN(Json next, GetJson("meta/next"));
  int64_t next_trial = next.Find("trial")->as_int(), next_event = next.Find("event")->as_int();
  CreatedExperiment created;
  created.id = id;
  rocksdb::WriteBatch batch;
  Json::Array trial_ids;
  if (const Json* earlier = record.Find("trials"); earlier != nullptr && earlier->is_array()) {
    trial_ids = earlier->as_array();
  }
  PlaceTrials(trials, created, next_trial, batch, trial_ids);
  record.as_object()["trials"] = Json(std::move(trial_ids));
  record.as_object()["spec"] = spec;
  batch.Put(ExperimentKey(id), record.Dump());
  Json::Object event{{"seq", next_event},
                     {"kind", "experiment_extended"},
                     {"experiment", id},
                     {"trials", static_cast<int64_t>(trials.size())},
                     {"reused", static_cast<int64_t>(created.reused.size())}};
  if (!actor.empty()) event["by"] = Json(actor);
  batch.Put(EventKey(next_event), Json(std::move(event)).Dump());
  next.as_object()["trial"] = Json(next_trial);
  next.as_object()["event"] = Json(next_event + 1);
  batch.Put("meta/next", next.Dump());
  MAESTRO_RETURN_IF_ERROR(
      FromRocksStatus(db_->Write(Synced(), &batch), "extending the experiment"));
  return created;
}

Status Store::Commit(Change change) {
  if (change.empty()) return OkStatus();
  std::lock_guard<std::mutex> lock(mutex_);
  rocksdb::WriteBatch batch;
  for (const auto& [key, value] : change.puts_) batch.Put(key, value);
  if (!change.events_.empty()) {
    MAESTRO_ASSIGN_OR_RETURN(Json next, GetJson("meta/next"));
    int64_t seq = next.Find("event")->as_int();
    for (Json& event : change.events_) {
      event.as_object()["seq"] = Json(seq);
      if (!change.actor_.empty() && event.Find("by") == nullptr) {
        event.as_object()["by"] = Json(change.actor_);
      }
      batch.Put(EventKey(seq), event.Dump());
      ++seq;
    }
    next.as_object()["event"] = Json(seq);
    batch.Put("meta/next", next.Dump());
  }
  return FromRocksStatus(db_->Write(Synced(), &batch), "committing a change");
}

std::vector<Json> Store::Trials() const { return Scan("trial/", ""); }
std::vector<Json> Store::Workers() const { return Scan("worker/", ""); }
std::vector<Json> Store::Datasets() const { return Scan("dataset/", ""); }
std::vector<Json> Store::Tokens() const { return Scan("token/", ""); }
std::vector<Json> Store::Metrics(int64_t trial) const { return Scan(MetricPrefix(trial), ""); }

std::vector<MetricRecord> Store::MetricsFrom(int64_t trial, int64_t attempt, int64_t step,
                                             size_t limit) const {
  std::vector<MetricRecord> out;
  const std::string prefix = MetricPrefix(trial);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix + Padded(attempt, 6) + "/" + Padded(step, 16));
       it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    // <prefix><attempt 6>/<step 16>
    const std::string key = it->key().ToString().substr(prefix.size());
    auto json = Json::Parse(it->value().ToStringView());
    if (!json.ok() || key.size() != 23) continue;
    out.push_back({std::stoll(key.substr(0, 6)), std::stoll(key.substr(7)), std::move(*json)});
  }
  return out;
}

std::vector<LogChunkRecord> Store::Logs(int64_t trial) const {
  std::vector<LogChunkRecord> out;
  const std::string prefix = LogPrefix(trial);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string rest = it->key().ToString().substr(prefix.size());  // attempt/offset
    LogChunkRecord chunk;
    chunk.attempt = std::stoll(rest.substr(0, 6));
    chunk.offset = std::stoll(rest.substr(7));
    chunk.data = it->value().ToString();
    out.push_back(std::move(chunk));
  }
  return out;
}

Result<Json> Store::Experiment(int64_t id) const { return GetJson(ExperimentKey(id)); }
Result<Json> Store::Trial(int64_t id) const { return GetJson(TrialKey(id)); }
std::vector<Json> Store::Experiments() const { return Scan("exp/", ""); }
std::vector<Json> Store::Events(int64_t from) const { return Scan("event/", EventKey(from)); }

}  // namespace maestro::coordinator
