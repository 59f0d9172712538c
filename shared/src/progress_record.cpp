#include "maestro/shared/progress_record.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "maestro/shared/json.h"

namespace maestro {
namespace {

Status Bad(const std::string& why) { return InvalidArgumentError("progress record: " + why); }

Result<int64_t> IntField(const Json& json, const char* key) {
  const Json* value = json.Find(key);
  if (value == nullptr || !value->is_int()) return Bad(std::string(key) + ": not an integer");
  return value->as_int();
}

Result<double> NumberField(const Json& json, const char* key) {
  const Json* value = json.Find(key);
  if (value == nullptr || !value->is_number()) return Bad(std::string(key) + ": not a number");
  return value->as_double();
}

Json CountsJson(const DurationCounts& d) {
  Json::Array counts;
  for (int64_t c : d.counts) counts.emplace_back(c);
  return Json(Json::Object{{"sum", std::isfinite(d.sum) ? d.sum : 0.0},
                           {"counts", Json(std::move(counts))}});
}

Status ParseCounts(const Json& json, const char* key, DurationCounts& out) {
  const Json* value = json.Find(key);
  if (value == nullptr) return OkStatus();
  const Json* sum = value->Find("sum");
  const Json* counts = value->Find("counts");
  if (sum == nullptr || !sum->is_number() || counts == nullptr || !counts->is_array() ||
      counts->as_array().size() != out.counts.size()) {
    return Bad(std::string(key) + ": not {sum, counts} with " + std::to_string(out.counts.size()) +
               " counts");
  }
  out.sum = sum->as_double();
  for (size_t i = 0; i < out.counts.size(); ++i) {
    const Json& c = counts->as_array()[i];
    if (!c.is_int() || c.as_int() < 0) return Bad(std::string(key) + ": a bad count");
    out.counts[i] = c.as_int();
  }
  return OkStatus();
}

}  // namespace

void DurationCounts::Observe(double seconds) {
  const auto& bounds = DurationBucketsSeconds();
  size_t i = 0;
  while (i < bounds.size() && seconds > bounds[i]) ++i;
  ++counts[i];
  sum += seconds;
}

int64_t DurationCounts::total() const {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  return n;
}

std::string FormatProgressRecord(const ProgressRecord& r) {
  // A non-finite loss (a diverged run) is recorded as null: JSON has no NaN.
  auto number = [](double v) { return std::isfinite(v) ? Json(v) : Json(); };
  Json::Object out{{"v", kProgressRecordVersion},
                   {"phase", r.phase},
                   {"rank", r.rank},
                   {"step", r.step},
                   {"total_steps", r.total_steps},
                   {"epoch", number(r.epoch)},
                   {"loss", number(r.loss)},
                   {"lr", number(r.lr)},
                   {"images_per_s", number(r.images_per_second)},
                   {"time_ms", r.time_ms}};
  if (r.has_window) {
    out["steps"] = Json(r.steps);
    out["samples"] = Json(r.samples);
    out["step_s"] = CountsJson(r.step_s);
    out["data_wait_s"] = CountsJson(r.data_wait_s);
    out["allreduce_s"] = CountsJson(r.allreduce_s);
    out["checkpoint_write_s"] = CountsJson(r.checkpoint_write_s);
    out["grad_norm"] = r.grad_norm >= 0 ? number(r.grad_norm) : Json();
    out["checkpoint_age_s"] = number(r.checkpoint_age_s);
    out["checkpoint_interval_s"] = number(r.checkpoint_interval_s);
  }
  return Json(std::move(out)).Dump();
}

Result<ProgressRecord> ParseProgressRecord(std::string_view line) {
  if (line.size() > 4096) return Bad("longer than 4096 bytes");
  auto json = Json::Parse(line);
  if (!json.ok()) return Bad(json.status().message());
  if (!json->is_object()) return Bad("not a JSON object");
  MAESTRO_ASSIGN_OR_RETURN(int64_t version, IntField(*json, "v"));
  if (version != kProgressRecordVersion) {
    return Bad("version " + std::to_string(version) + ", this build reads " +
               std::to_string(kProgressRecordVersion));
  }
  ProgressRecord r;
  const Json* phase = json->Find("phase");
  if (phase == nullptr || !phase->is_string()) return Bad("phase: not a string");
  r.phase = phase->as_string();
  if (r.phase != "start" && r.phase != "train" && r.phase != "done") {
    return Bad("phase: unknown phase '" + r.phase + "'");
  }
  MAESTRO_ASSIGN_OR_RETURN(r.rank, IntField(*json, "rank"));
  MAESTRO_ASSIGN_OR_RETURN(r.step, IntField(*json, "step"));
  MAESTRO_ASSIGN_OR_RETURN(r.total_steps, IntField(*json, "total_steps"));
  MAESTRO_ASSIGN_OR_RETURN(r.time_ms, IntField(*json, "time_ms"));
  if (r.rank < 0 || r.step < 0 || r.total_steps < 0) return Bad("a negative rank or step");
  // Figures recorded as null (not finite) read as NaN.
  for (auto [key, out] : {std::pair<const char*, double*>{"epoch", &r.epoch},
                          {"loss", &r.loss},
                          {"lr", &r.lr},
                          {"images_per_s", &r.images_per_second}}) {
    const Json* value = json->Find(key);
    if (value != nullptr && value->is_null()) {
      *out = std::nan("");
      continue;
    }
    MAESTRO_ASSIGN_OR_RETURN(*out, NumberField(*json, key));
  }
  if (json->Find("steps") != nullptr) {
    r.has_window = true;
    MAESTRO_ASSIGN_OR_RETURN(r.steps, IntField(*json, "steps"));
    MAESTRO_ASSIGN_OR_RETURN(r.samples, IntField(*json, "samples"));
    if (r.steps < 0 || r.samples < 0) return Bad("negative steps or samples");
    MAESTRO_RETURN_IF_ERROR(ParseCounts(*json, "step_s", r.step_s));
    MAESTRO_RETURN_IF_ERROR(ParseCounts(*json, "data_wait_s", r.data_wait_s));
    MAESTRO_RETURN_IF_ERROR(ParseCounts(*json, "allreduce_s", r.allreduce_s));
    MAESTRO_RETURN_IF_ERROR(ParseCounts(*json, "checkpoint_write_s", r.checkpoint_write_s));
    for (auto [key, out] : {std::pair<const char*, double*>{"grad_norm", &r.grad_norm},
                            {"checkpoint_age_s", &r.checkpoint_age_s},
                            {"checkpoint_interval_s", &r.checkpoint_interval_s}}) {
      const Json* value = json->Find(key);
      if (value == nullptr || value->is_null()) {
        *out = key == std::string("grad_norm") ? -1 : 0;
        continue;
      }
      MAESTRO_ASSIGN_OR_RETURN(*out, NumberField(*json, key));
    }
  }
  return r;
}

Status AppendProgressRecord(const std::string& path, const ProgressRecord& record) {
  const std::string line = FormatProgressRecord(record) + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return UnavailableError(path + ": " + std::strerror(errno));
  const ssize_t written = ::write(fd, line.data(), line.size());
  const int saved = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) {
    return UnavailableError(path + ": " + (written < 0 ? std::strerror(saved) : "short write"));
  }
  return OkStatus();
}

}  // namespace maestro
