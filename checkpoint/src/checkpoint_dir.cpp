#include "maestro/checkpoint/checkpoint_dir.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "maestro/shared/file_util.h"
#include "maestro/shared/sha256.h"

namespace maestro::checkpoint {
namespace {

// Committed names sorted newest first; names not of the step-N form are ignored.
std::vector<std::pair<int64_t, std::string>> StepsNewestFirst(
    const std::vector<std::string>& names) {
  std::vector<std::pair<int64_t, std::string>> steps;
  for (const auto& name : names) {
    if (name.rfind("step-", 0) != 0 || name.size() <= 5) continue;
    std::string digits = name.substr(5);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    steps.emplace_back(std::stoll(digits), name);
  }
  std::sort(steps.begin(), steps.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  return steps;
}

}  // namespace

std::string CheckpointName(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%012lld", static_cast<long long>(step));
  return name;
}

Json Manifest::ToJson() const {
  Json::Array file_list;
  for (const auto& f : files) {
    file_list.push_back(Json(Json::Object{
        {"name", f.name}, {"sha256", f.sha256}, {"bytes", f.bytes}, {"rank", f.rank}}));
  }
  return Json(Json::Object{{"format_version", format_version},
                           {"step", step},
                           {"world_size", world_size},
                           {"files", Json(std::move(file_list))}});
}

Result<Manifest> Manifest::FromJson(const Json& json) {
  try {
    Manifest m;
    m.format_version = json.Find("format_version") ? json.Find("format_version")->as_int() : -1;
    if (m.format_version != kManifestFormatVersion) {
      return DataLossError("manifest format_version " + std::to_string(m.format_version) +
                           " is not " + std::to_string(kManifestFormatVersion));
    }
    m.step = json.Find("step")->as_int();
    m.world_size = json.Find("world_size")->as_int();
    for (const Json& f : json.Find("files")->as_array()) {
      m.files.push_back({f.Find("name")->as_string(), f.Find("sha256")->as_string(),
                         f.Find("bytes")->as_int(), f.Find("rank")->as_int()});
    }
    return m;
  } catch (const Error& e) {
    return DataLossError("malformed manifest: " + e.status().message());
  } catch (const std::exception&) {
    return DataLossError("malformed manifest: a required field is missing");
  }
}

CheckpointWriter::CheckpointWriter(CheckpointStorage& storage, std::string staging,
                                   Manifest manifest)
    : storage_(&storage), staging_(std::move(staging)), manifest_(std::move(manifest)) {}

Result<CheckpointWriter> CheckpointWriter::Begin(CheckpointStorage& storage, int64_t step,
                                                 int64_t world_size) {
  MAESTRO_ASSIGN_OR_RETURN(std::string staging, storage.BeginStaging(CheckpointName(step)));
  Manifest manifest;
  manifest.step = step;
  manifest.world_size = world_size;
  return CheckpointWriter(storage, std::move(staging), std::move(manifest));
}

std::string CheckpointWriter::PathFor(const std::string& file) const {
  return staging_ + "/" + file;
}

Status CheckpointWriter::WriteFile(const std::string& file, std::string_view bytes, int64_t rank) {
  MAESTRO_RETURN_IF_ERROR(WriteFileAtomic(PathFor(file), bytes));
  manifest_.files.push_back({file, Sha256Hex(bytes), static_cast<int64_t>(bytes.size()), rank});
  return OkStatus();
}

Status CheckpointWriter::AddFile(const std::string& file, int64_t rank) {
  const std::string path = PathFor(file);
  MAESTRO_ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
  MAESTRO_ASSIGN_OR_RETURN(int64_t bytes, FileSize(path));
  manifest_.files.push_back({file, digest, bytes, rank});
  return OkStatus();
}

Status CheckpointWriter::Commit() {
  std::set<int64_t> ranks;
  for (const auto& f : manifest_.files) ranks.insert(f.rank);
  std::string missing;
  for (int64_t r = 0; r < manifest_.world_size; ++r) {
    if (!ranks.count(r)) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!missing.empty()) {
    return FailedPreconditionError("checkpoint " + CheckpointName(manifest_.step) +
                                   " lacks the files of rank(s) " + missing);
  }
  MAESTRO_RETURN_IF_ERROR(
      WriteFileAtomic(PathFor(kManifestFile), manifest_.ToJson().Dump() + "\n"));
  return storage_->Commit(staging_, CheckpointName(manifest_.step));
}

Result<Manifest> VerifyCheckpoint(const std::string& dir) {
  auto text = ReadFile(dir + "/" + kManifestFile);
  if (!text.ok()) return DataLossError("no readable manifest: " + text.status().message());
  auto json = Json::Parse(*text);
  if (!json.ok()) return DataLossError("manifest is not JSON: " + json.status().message());
  MAESTRO_ASSIGN_OR_RETURN(Manifest manifest, Manifest::FromJson(*json));
  for (const auto& f : manifest.files) {
    const std::string path = dir + "/" + f.name;
    auto size = FileSize(path);
    if (!size.ok()) return DataLossError(f.name + " is missing");
    const int64_t bytes = *size;
    if (bytes != f.bytes) {
      return DataLossError(f.name + " has " + std::to_string(bytes) + " bytes, the manifest says " +
                           std::to_string(f.bytes));
    }
    MAESTRO_ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
    if (digest != f.sha256) return DataLossError(f.name + " fails its sha256 check");
  }
  return manifest;
}

Result<std::optional<FoundCheckpoint>> FindLatestValid(CheckpointStorage& storage,
                                                       std::vector<std::string>* skipped) {
  MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> names, storage.List());
  for (const auto& [step, name] : StepsNewestFirst(names)) {
    std::string path = storage.LocalPath(name);
    auto manifest = VerifyCheckpoint(path);
    if (manifest.ok())
      return std::optional<FoundCheckpoint>(FoundCheckpoint{name, path, *manifest});
    if (skipped) skipped->push_back(name + ": " + manifest.status().ToString());
  }
  return std::optional<FoundCheckpoint>();
}

Status ApplyRetention(CheckpointStorage& storage, int64_t keep_last) {
  if (keep_last <= 0) return OkStatus();
  MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> names, storage.List());
  auto steps = StepsNewestFirst(names);
  for (size_t i = static_cast<size_t>(keep_last); i < steps.size(); ++i) {
    MAESTRO_RETURN_IF_ERROR(storage.Remove(steps[i].second));
  }
  return OkStatus();
}

}  // namespace maestro::checkpoint
