// The coordinator's state in RocksDB: experiments, their trials with attempts, and an
// append-only event log. Every state change is one synced WriteBatch (a whole submitted grid
// is one batch), so a coordinator killed at any moment reopens to a state where each change
// either happened completely or not at all. A schema version is checked at open.
//
// Keys (values are JSON):
//   meta/schema               schema version
//   meta/next                 {experiment, trial, event}: the next ids
//   exp/<id>                  an experiment: {id, name, kind, spec, trials: [trial ids], ...}
//   idem/<key>                the experiment created by a request with this idempotency key
//   trial/<id>                a trial: trial_record.h TrialRecord (changed by lifecycle.h only)
//   ident/<identity>          the trial holding an identity (a finished cell is found here)
//   event/<20-digit seq>      an event: {seq, kind, experiment, trial, ..., by: the name of the
//                             credential whose call caused it}
//   worker/<id>               a worker as last registered: {id, build, resources, address}
//   dataset/<name>            a registered dataset: {name, path, service, served_as, splits}
//   token/<id>                a bearer token's record (security.h TokenRecord: its SHA-256,
//                             never the token)
//   metric/<trial>/<attempt>/<step>   a progress record {step, loss, lr, images_per_s, stage}
//   log/<trial>/<attempt>/<offset>    a chunk of a trainer's captured output
// Ids are 12-digit zero-padded decimals (attempts 6, offsets and steps 16) so keys sort
// numerically. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace rocksdb {
class DB;
class WriteBatch;
}

namespace maestro::coordinator {

inline constexpr int64_t kStoreSchemaVersion = 1;

// A trial to create with an experiment.
struct NewTrial {
  std::string identity;
  Json hparams;
  // Found by its identity (a stored trial holding it is shared; this one is registered for
  // later experiments). False for an asha trial: its stops and promotions are its
  // experiment's own, so it is never shared.
  bool shared = true;
};

struct CreatedExperiment {
  int64_t id = 0;
  bool existed = false;         // the idempotency key had created it already
  std::vector<int64_t> trials;  // the experiment's trials, in searcher order
  std::vector<int64_t> reused;  // those that already existed (same identity elsewhere)
};

// A set of puts and events committed together (Store::Commit): one synced WriteBatch.
class Change {
 public:
  void PutTrial(const Json& trial);  // by its "id"
  void PutExperiment(const Json& experiment);
  void PutWorker(const Json& worker);    // by its "id"
  void PutDataset(const Json& dataset);  // by its "name"
  void PutToken(const Json& token);      // by its "id"
  void AddMetric(int64_t trial, int64_t attempt, int64_t step, const Json& record);
  void AddLog(int64_t trial, int64_t attempt, int64_t offset, std::string data);
  // An event; its "seq" is assigned at commit.
  void AddEvent(Json event);
  // Who caused the change (a credential's name): recorded as "by" in each of its events.
  void SetActor(std::string actor) { actor_ = std::move(actor); }
  bool empty() const { return puts_.empty() && events_.empty(); }
  // The events added so far, in order (before commit: no "seq" yet).
  const std::vector<Json>& events() const { return events_; }

 private:
  friend class Store;
  std::string actor_;
  std::vector<std::pair<std::string, std::string>> puts_;
  std::vector<Json> events_;
};

// A stored progress record and where it is.
struct MetricRecord {
  int64_t attempt = 0, step = 0;
  Json record;
};

// A stored chunk of a trial's log.
struct LogChunkRecord {
  int64_t attempt = 0;
  int64_t offset = 0;  // within the attempt
  std::string data;
};

class Store {
 public:
  // Opens (creating) the store in `dir`. FAILED_PRECONDITION for another schema version,
  // UNAVAILABLE when RocksDB cannot open it (a second coordinator holds the lock, say).
  static Result<std::unique_ptr<Store>> Open(const std::string& dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Creates an experiment and its trials in one synced batch, with a "created" event. A
  // request repeated with the same non-empty idempotency key returns the first one's result.
  // A trial whose identity a stored trial already holds is not created again: that trial is
  // shared (and a finished one is never rerun).
  Result<CreatedExperiment> CreateExperiment(const Json& experiment,
                                             const std::vector<NewTrial>& trials,
                                             const std::string& idempotency_key);

  // Adds `trials` to experiment `id` and stores `spec` as its spec, with an
  // "experiment_extended" event by `actor`, in one synced batch; a trial whose identity a
  // stored trial holds is shared, as at creation. NOT_FOUND for an unknown experiment.
  Result<CreatedExperiment> ExtendExperiment(int64_t id, const Json& spec,
                                             const std::vector<NewTrial>& trials,
                                             const std::string& actor);

  // Writes `change` in one synced batch.
  Status Commit(Change change);

  Result<Json> Experiment(int64_t id) const;  // NOT_FOUND for an unknown id
  Result<Json> Trial(int64_t id) const;       // NOT_FOUND for an unknown id
  std::vector<Json> Experiments() const;
  std::vector<Json> Trials() const;
  std::vector<Json> Workers() const;
  std::vector<Json> Datasets() const;
  std::vector<Json> Tokens() const;
  // A trial's progress records, in (attempt, step) order.
  std::vector<Json> Metrics(int64_t trial) const;
  // At most `limit` of them, from (attempt, step) on.
  std::vector<MetricRecord> MetricsFrom(int64_t trial, int64_t attempt, int64_t step,
                                        size_t limit) const;
  // A trial's log chunks, in (attempt, offset) order.
  std::vector<LogChunkRecord> Logs(int64_t trial) const;
  // Events with seq >= `from`, in order.
  std::vector<Json> Events(int64_t from = 0) const;

 private:
  explicit Store(std::unique_ptr<rocksdb::DB> db);
  // New trials get ids from `next_trial` on (their records and identities put in `batch`);
  // known identities are shared. Every trial's id is appended to created.trials and
  // `trial_ids`, shared ones to created.reused.
  void PlaceTrials(const std::vector<NewTrial>& trials, CreatedExperiment& created,
                   int64_t& next_trial, rocksdb::WriteBatch& batch, Json::Array& trial_ids) const;
  Result<Json> GetJson(const std::string& key) const;
  std::vector<Json> Scan(const std::string& prefix, const std::string& from) const;

  std::unique_ptr<rocksdb::DB> db_;
  mutable std::mutex mutex_;  // serializes read-modify-write changes
};

}  // namespace maestro::coordinator
