// One checkpoint = one committed folder "step-<12 digits>" holding the files of every rank
// and a manifest.json that lists each file with its sha256, size and writing rank.
//
// Writing: Begin() a staging folder, write files into it (each rank its own), AddFile() each,
// then Commit(): the manifest is written last, once every rank 0..world_size-1 has added at
// least one file, then the folder is renamed into place. Reading: FindLatestValid() walks the
// committed checkpoints newest first and returns the first whose every checksum verifies,
// reporting each one it had to skip. Not thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "maestro/checkpoint/storage.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::checkpoint {

inline constexpr int64_t kManifestFormatVersion = 1;
inline constexpr const char* kManifestFile = "manifest.json";

struct ManifestFile {
  std::string name;
  std::string sha256;
  int64_t bytes = 0;
  int64_t rank = 0;
};

struct Manifest {
  int64_t format_version = kManifestFormatVersion;
  int64_t step = 0;
  int64_t world_size = 1;
  std::vector<ManifestFile> files;

  Json ToJson() const;
  static Result<Manifest> FromJson(const Json& json);
};

// "step-000000001234".
std::string CheckpointName(int64_t step);

class CheckpointWriter {
 public:
  static Result<CheckpointWriter> Begin(CheckpointStorage& storage, int64_t step,
                                        int64_t world_size);

  // Where to write `file` (a plain name, no folders).
  std::string PathFor(const std::string& file) const;
  // Writes `bytes` as `file` (atomically, fsynced) and records it, hashing the bytes in memory
  // rather than reading the file back.
  Status WriteFile(const std::string& file, std::string_view bytes, int64_t rank);
  // Records a file another writer (another rank's process) put there: reads and hashes it.
  // NOT_FOUND when it is not there.
  Status AddFile(const std::string& file, int64_t rank);
  // FAILED_PRECONDITION naming the missing ranks; else writes the manifest and commits.
  Status Commit();

 private:
  CheckpointWriter(CheckpointStorage& storage, std::string staging, Manifest manifest);
  CheckpointStorage* storage_;
  std::string staging_;
  Manifest manifest_;
};

// Verifies one checkpoint folder: the manifest parses and every file has its size and sha256.
// DATA_LOSS naming the first file that does not.
Result<Manifest> VerifyCheckpoint(const std::string& dir);

struct FoundCheckpoint {
  std::string name;
  std::string path;  // local folder
  Manifest manifest;
};

// The newest valid checkpoint, or nullopt when there is none. Each newer checkpoint that
// failed verification adds a line to `skipped` ("step-...: DATA_LOSS: ...").
Result<std::optional<FoundCheckpoint>> FindLatestValid(CheckpointStorage& storage,
                                                       std::vector<std::string>* skipped);

// Keeps the newest `keep_last` checkpoints (all when keep_last <= 0) and removes the rest.
Status ApplyRetention(CheckpointStorage& storage, int64_t keep_last);

}  // namespace maestro::checkpoint
