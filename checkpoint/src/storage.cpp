#include "maestro/checkpoint/storage.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "maestro/shared/file_util.h"

namespace maestro::checkpoint {
namespace {

constexpr const char* kStagingPrefix = ".staging-";

class LocalStorage : public CheckpointStorage {
 public:
  LocalStorage(std::string uri, std::string root) : uri_(std::move(uri)), root_(std::move(root)) {}

  const std::string& uri() const override { return uri_; }

  Status EnsureWritable() override {
    if (Status made = MakeDirectories(root_); !made.ok()) {
      return FailedPreconditionError("checkpoint location " + root_ +
                                     " cannot be created: " + made.message());
    }
    // Probe: write, fsync and delete a file.
    const std::string probe_path = root_ + "/.write-probe";
    if (Status probe = WriteFileAtomic(probe_path, "ok"); !probe.ok()) {
      return FailedPreconditionError("checkpoint location " + root_ +
                                     " is not writable: " + probe.message());
    }
    ::unlink(probe_path.c_str());
    MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(root_));
    for (const auto& name : names) {
      if (name.rfind(kStagingPrefix, 0) == 0)
        MAESTRO_RETURN_IF_ERROR(RemoveTree(root_ + "/" + name));
    }
    return OkStatus();
  }

  Result<std::vector<std::string>> List() override {
    std::vector<std::string> names;
    if (!PathExists(root_)) return names;
    MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> entries, ListDirectory(root_));
    for (auto& name : entries) {
      if (!name.empty() && name[0] != '.' && IsDirectory(root_ + "/" + name))
        names.push_back(std::move(name));
    }
    return names;
  }

  Result<std::string> BeginStaging(const std::string& name) override {
    std::string staging = root_ + "/" + kStagingPrefix + name + "-" + std::to_string(::getpid());
    MAESTRO_RETURN_IF_ERROR(RemoveTree(staging));
    MAESTRO_RETURN_IF_ERROR(MakeDirectories(staging));
    return staging;
  }

  Status Commit(const std::string& staging, const std::string& name) override {
    MAESTRO_RETURN_IF_ERROR(FsyncDirectory(staging));
    const std::string target = root_ + "/" + name;
    MAESTRO_RETURN_IF_ERROR(RemoveTree(target));  // a re-save of the same step
    if (::rename(staging.c_str(), target.c_str()) != 0) {
      return UnavailableError("cannot rename " + staging + " to " + target + ": " +
                              std::strerror(errno));
    }
    return FsyncDirectory(root_);
  }

  std::string LocalPath(const std::string& name) const override { return root_ + "/" + name; }

  Status Remove(const std::string& name) override { return RemoveTree(root_ + "/" + name); }

 private:
  std::string uri_;
  std::string root_;
};

}  // namespace

Result<std::unique_ptr<CheckpointStorage>> OpenStorage(const std::string& uri) {
  if (uri.empty()) return InvalidArgumentError("empty checkpoint location");
  std::string path = uri;
  auto scheme_end = uri.find("://");
  if (scheme_end != std::string::npos) {
    std::string scheme = uri.substr(0, scheme_end);
    if (scheme != "file") {
      return InvalidArgumentError("checkpoint location '" + uri + "': scheme '" + scheme +
                                  "' is not supported (use file:// or a path)");
    }
    path = uri.substr(scheme_end + 3);
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return std::unique_ptr<CheckpointStorage>(new LocalStorage(uri, AbsolutePath(path)));
}

}  // namespace maestro::checkpoint
