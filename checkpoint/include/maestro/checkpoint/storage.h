// Where checkpoints live, behind a small interface so that object stores can come later.
//
// A location is a URI: "file:///abs/path", or a plain path (a local or shared filesystem).
// Checkpoints are written into a local staging folder and committed under their name in one
// atomic step; readers see committed checkpoints only. Implementations are not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::checkpoint {

class CheckpointStorage {
 public:
  virtual ~CheckpointStorage() = default;
  virtual const std::string& uri() const = 0;

  // Creates the location when missing and proves it writable; removes staging folders a
  // crashed writer left. FAILED_PRECONDITION with the reason otherwise.
  virtual Status EnsureWritable() = 0;
  // Names of the committed checkpoints, in no particular order (empty when there are none or
  // the location does not exist).
  virtual Result<std::vector<std::string>> List() = 0;
  // A new, empty local folder to write checkpoint `name` into.
  virtual Result<std::string> BeginStaging(const std::string& name) = 0;
  // Publishes a staging folder as `name`: after this returns OK, `name` survives a crash.
  virtual Status Commit(const std::string& staging, const std::string& name) = 0;
  // A local folder holding the files of committed checkpoint `name`.
  virtual std::string LocalPath(const std::string& name) const = 0;
  virtual Status Remove(const std::string& name) = 0;
};

// Opens the storage for `uri`. INVALID_ARGUMENT for a scheme this build does not support.
Result<std::unique_ptr<CheckpointStorage>> OpenStorage(const std::string& uri);

}  // namespace maestro::checkpoint
