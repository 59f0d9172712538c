#include "maestro/coordinator/trial_record.h"

#include <array>
#include <set>
#include <utility>

namespace maestro::coordinator {
namespace {

constexpr std::array<std::pair<TrialState, std::string_view>, 7> kStateNames = {{
    {TrialState::kQueued, "queued"},
    {TrialState::kAssigned, "assigned"},
    {TrialState::kRunning, "running"},
    {TrialState::kStopped, "stopped"},
    {TrialState::kCompleted, "completed"},
    {TrialState::kFailed, "failed"},
    {TrialState::kCanceled, "canceled"},
}};

// Reads the fields of one stored object, naming the first one of the wrong type.
class FieldReader {
 public:
  FieldReader(const Json& object, std::string where) : object_(object), where_(std::move(where)) {}

  Status Int(std::string_view key, int64_t& out, bool required = false) {
    const Json* value = Take(key);
    if (value == nullptr) return required ? Missing(key) : OkStatus();
    if (!value->is_int()) return Wrong(key, "an integer");
    out = value->as_int();
    return OkStatus();
  }
  Status String(std::string_view key, std::string& out) {
    const Json* value = Take(key);
    if (value == nullptr) return OkStatus();
    if (!value->is_string()) return Wrong(key, "a string");
    out = value->as_string();
    return OkStatus();
  }
  Status Bool(std::string_view key, bool& out) {
    const Json* value = Take(key);
    if (value == nullptr) return OkStatus();
    if (!value->is_bool()) return Wrong(key, "true or false");
    out = value->as_bool();
    return OkStatus();
  }
  Status Object(std::string_view key, Json& out) {
    const Json* value = Take(key);
    if (value == nullptr) return OkStatus();
    if (!value->is_object()) return Wrong(key, "an object");
    out = *value;
    return OkStatus();
  }
  const Json* Array(std::string_view key, Status& status) {
    const Json* value = Take(key);
    if (value != nullptr && !value->is_array()) status = Wrong(key, "an array");
    return value != nullptr && value->is_array() ? value : nullptr;
  }
  // The fields no call above took.
  Json::Object Rest() const {
    Json::Object rest;
    for (const auto& [key, value] : object_.as_object()) {
      if (!taken_.count(key)) rest.emplace(key, value);
    }
    return rest;
  }

  Status Missing(std::string_view key) const {
    return InvalidArgumentError(where_ + "." + std::string(key) + ": missing");
  }
  Status Wrong(std::string_view key, const char* expected) const {
    return InvalidArgumentError(where_ + "." + std::string(key) + ": not " + expected);
  }

 private:
  const Json* Take(std::string_view key) {
    taken_.emplace(key);
    return object_.Find(key);
  }

  const Json& object_;
  std::string where_;
  std::set<std::string, std::less<>> taken_;
};

}  // namespace

std::string_view TrialStateName(TrialState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<TrialState> ParseTrialState(std::string_view name) {
  for (const auto& [state, n] : kStateNames) {
    if (n == name) return state;
  }
  return std::nullopt;
}

bool IsActive(TrialState state) {
  return state == TrialState::kAssigned || state == TrialState::kRunning;
}

bool IsFinished(TrialState state) {
  return state == TrialState::kCompleted || state == TrialState::kFailed ||
         state == TrialState::kCanceled;
}

Result<TrialRecord> TrialRecord::FromJson(const Json& json) {
  if (!json.is_object()) return InvalidArgumentError("trial: not a JSON object");
  TrialRecord t;
  const Json* id = json.Find("id");
  if (id == nullptr || !id->is_int())
    return InvalidArgumentError("trial.id: missing or not an integer");
  t.id = id->as_int();
  FieldReader fields(json, "trial " + std::to_string(t.id));
  MAESTRO_RETURN_IF_ERROR(fields.Int("id", t.id, true));
  MAESTRO_RETURN_IF_ERROR(fields.Int("experiment", t.experiment, true));
  MAESTRO_RETURN_IF_ERROR(fields.String("identity", t.identity));
  MAESTRO_RETURN_IF_ERROR(fields.Object("hparams", t.hparams));
  std::string state;
  MAESTRO_RETURN_IF_ERROR(fields.String("state", state));
  if (state.empty()) return fields.Missing("state");
  auto parsed = ParseTrialState(state);
  if (!parsed) {
    return InvalidArgumentError("trial " + std::to_string(t.id) + ".state: unknown state '" +
                                state + "'");
  }
  t.state = *parsed;
  MAESTRO_RETURN_IF_ERROR(fields.Int("attempt", t.attempt));
  MAESTRO_RETURN_IF_ERROR(fields.String("worker", t.worker));
  Status status = OkStatus();
  if (const Json* gang = fields.Array("gang", status)) {
    for (const Json& w : gang->as_array()) {
      if (!w.is_string()) return fields.Wrong("gang", "a list of worker ids");
      t.gang.push_back(w.as_string());
    }
  }
  MAESTRO_RETURN_IF_ERROR(status);
  MAESTRO_RETURN_IF_ERROR(fields.Int("stage", t.stage));
  MAESTRO_RETURN_IF_ERROR(fields.Int("stage_runs", t.stage_runs));
  MAESTRO_RETURN_IF_ERROR(fields.Int("restarts", t.restarts));
  MAESTRO_RETURN_IF_ERROR(fields.Int("queued_at_ms", t.queued_at_ms));
  MAESTRO_RETURN_IF_ERROR(fields.Int("completed_ms", t.completed_ms));
  MAESTRO_RETURN_IF_ERROR(fields.Bool("cancel_requested", t.cancel_requested));
  MAESTRO_RETURN_IF_ERROR(fields.String("cause", t.cause));
  if (const Json* failures = fields.Array("failures", status)) {
    for (const Json& f : failures->as_array()) {
      if (!f.is_object()) return fields.Wrong("failures", "a list of objects");
      TrialFailure failure;
      FieldReader item(f, "trial " + std::to_string(t.id) + ".failures[]");
      MAESTRO_RETURN_IF_ERROR(item.Int("attempt", failure.attempt));
      MAESTRO_RETURN_IF_ERROR(item.Int("stage", failure.stage));
      MAESTRO_RETURN_IF_ERROR(item.Int("time_ms", failure.time_ms));
      MAESTRO_RETURN_IF_ERROR(item.String("cause_kind", failure.cause_kind));
      MAESTRO_RETURN_IF_ERROR(item.String("cause", failure.cause));
      t.failures.push_back(std::move(failure));
    }
  }
  MAESTRO_RETURN_IF_ERROR(status);
  MAESTRO_RETURN_IF_ERROR(fields.Object("results", t.results));
  MAESTRO_RETURN_IF_ERROR(fields.Int("rung", t.rung));
  if (const Json* metrics = fields.Array("rung_metrics", status)) {
    for (const Json& m : metrics->as_array()) {
      if (!m.is_number()) return fields.Wrong("rung_metrics", "a list of numbers");
      t.rung_metrics.push_back(m.as_double());
    }
  }
  MAESTRO_RETURN_IF_ERROR(status);
  t.other = fields.Rest();
  return t;
}

Json TrialRecord::ToJson() const {
  Json::Object out = other;
  out["id"] = Json(id);
  out["experiment"] = Json(experiment);
  out["identity"] = Json(identity);
  out["hparams"] = hparams;
  out["state"] = Json(std::string(TrialStateName(state)));
  out["attempt"] = Json(attempt);
  out["stage"] = Json(stage);
  out["stage_runs"] = Json(stage_runs);
  out["restarts"] = Json(restarts);
  out["queued_at_ms"] = Json(queued_at_ms);
  if (!worker.empty()) out["worker"] = Json(worker);
  if (!gang.empty()) {
    Json::Array members;
    for (const std::string& w : gang) members.emplace_back(w);
    out["gang"] = Json(std::move(members));
  }
  if (completed_ms > 0) out["completed_ms"] = Json(completed_ms);
  if (cancel_requested) out["cancel_requested"] = Json(true);
  if (!cause.empty()) out["cause"] = Json(cause);
  if (!failures.empty()) {
    Json::Array list;
    for (const TrialFailure& f : failures) {
      list.emplace_back(Json::Object{{"attempt", f.attempt},
                                     {"stage", f.stage},
                                     {"cause_kind", f.cause_kind},
                                     {"cause", f.cause},
                                     {"time_ms", f.time_ms}});
    }
    out["failures"] = Json(std::move(list));
  }
  if (results.is_object() && !results.as_object().empty()) out["results"] = results;
  if (rung > 0) out["rung"] = Json(rung);
  if (!rung_metrics.empty()) {
    Json::Array list;
    for (double m : rung_metrics) list.emplace_back(m);
    out["rung_metrics"] = Json(std::move(list));
  }
  return Json(std::move(out));
}

std::vector<std::string> TrialRecord::Workers() const {
  if (!gang.empty()) return gang;
  return {worker};
}

}  // namespace maestro::coordinator
