// Confining paths to roots (Security II): a coordinator accepts dataset and weight paths only
// under its --data-root folders, a worker writes only under its --runs-root and reads only
// under its roots. Two strengths: a lexical check (the coordinator, which opens none of these
// paths and may not see them at all) and a resolved one (the worker: symlinks followed through
// the longest existing prefix, so a link inside a root that points outside it is caught).
#pragma once

#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro {

// `path` absolute with `.` and repeated slashes removed; INVALID_ARGUMENT for a relative path,
// an empty one, a `..` component (never needed for a path a cluster hands around, and the one
// thing a lexical check cannot judge next to symlinks) or a NUL byte.
Result<std::string> NormalizeAbsolutePath(const std::string& path);

// `path` with every symlink of its longest existing prefix resolved (realpath) and the rest
// appended: where a file created at `path` would land. Normalized first (its errors).
Result<std::string> ResolvePathPrefix(const std::string& path);

// Whether `path` is `root` or lies below it (both normalized; no file is looked at).
bool PathIsUnder(const std::string& path, const std::string& root);

class PathRoots {
 public:
  PathRoots() = default;
  // Roots normalized (`resolve`: symlinks of existing roots resolved too). INVALID_ARGUMENT
  // naming `flag` for a bad root.
  static Result<PathRoots> Make(const std::vector<std::string>& roots, const std::string& flag,
                                bool resolve);

  // OK when `path` lies under one of the roots: lexically, or (`resolve`) after resolving its
  // symlinks. PERMISSION_DENIED otherwise, naming `what` and the roots; INVALID_ARGUMENT for a
  // path that is not absolute or has `..`.
  Status Check(const std::string& what, const std::string& path, bool resolve) const;

  bool empty() const { return roots_.empty(); }
  const std::vector<std::string>& roots() const { return roots_; }
  // "/a, /b" or "none".
  std::string Describe() const;
  void Add(const PathRoots& other);

 private:
  std::string flag_;
  std::vector<std::string> roots_;
};

}  // namespace maestro
