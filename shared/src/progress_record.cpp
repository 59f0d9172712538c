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

}  // namespace

std::string FormatProgressRecord(const ProgressRecord& r) {
  // A non-finite loss (a diverged run) is recorded as null: JSON has no NaN.
  auto number = [](double v) { return std::isfinite(v) ? Json(v) : Json(); };
  return Json(Json::Object{{"v", kProgressRecordVersion},
                           {"phase", r.phase},
                           {"rank", r.rank},
                           {"step", r.step},
                           {"total_steps", r.total_steps},
                           {"epoch", number(r.epoch)},
                           {"loss", number(r.loss)},
                           {"lr", number(r.lr)},
                           {"images_per_s", number(r.images_per_second)},
                           {"time_ms", r.time_ms}})
      .Dump();
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
