#include "maestro/shared/path_roots.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>

namespace maestro {

Result<std::string> NormalizeAbsolutePath(const std::string& path) {
  if (path.empty()) return InvalidArgumentError("an empty path");
  if (path.find('\0') != std::string::npos) return InvalidArgumentError("a path with a NUL byte");
  if (path.front() != '/') return InvalidArgumentError("'" + path + "' is not an absolute path");
  std::string out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    if (part == "..") {
      return InvalidArgumentError("'" + path + "' has a '..' component (not allowed)");
    }
    if (!part.empty() && part != ".") out += "/" + part;
    start = end + 1;
  }
  return out.empty() ? std::string("/") : out;
}

Result<std::string> ResolvePathPrefix(const std::string& path) {
  MAESTRO_ASSIGN_OR_RETURN(std::string normal, NormalizeAbsolutePath(path));
  std::string prefix = normal, rest;
  while (true) {
    char resolved[PATH_MAX];
    if (realpath(prefix.c_str(), resolved) != nullptr) {
      std::string out = resolved;
      if (!rest.empty()) out += (out == "/" ? "" : "/") + rest;
      return out;
    }
    if (prefix == "/") return FailedPreconditionError("cannot resolve '/'");
    const size_t slash = prefix.rfind('/');
    const std::string last = prefix.substr(slash + 1);
    rest = rest.empty() ? last : last + "/" + rest;
    prefix = slash == 0 ? "/" : prefix.substr(0, slash);
  }
}

bool PathIsUnder(const std::string& path, const std::string& root) {
  if (root == "/") return !path.empty() && path.front() == '/';
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

Result<PathRoots> PathRoots::Make(const std::vector<std::string>& roots, const std::string& flag,
                                  bool resolve) {
  PathRoots out;
  out.flag_ = flag;
  for (const std::string& root : roots) {
    auto normal = resolve ? ResolvePathPrefix(root) : NormalizeAbsolutePath(root);
    if (!normal.ok()) return normal.status().WithContext(flag);
    if (std::find(out.roots_.begin(), out.roots_.end(), *normal) == out.roots_.end()) {
      out.roots_.push_back(*normal);
    }
  }
  return out;
}

Status PathRoots::Check(const std::string& what, const std::string& path, bool resolve) const {
  auto normal = resolve ? ResolvePathPrefix(path) : NormalizeAbsolutePath(path);
  if (!normal.ok()) return normal.status().WithContext(what);
  for (const std::string& root : roots_) {
    if (PathIsUnder(*normal, root)) return OkStatus();
  }
  std::string where = "'" + path + "'";
  if (*normal != path) where += " (" + *normal + ")";
  return PermissionDeniedError(what + ": " + where + " is outside " + flag_ +
                               (roots_.empty() ? " (none is set)" : " (" + Describe() + ")"));
}

std::string PathRoots::Describe() const {
  std::string out;
  for (const std::string& root : roots_) out += (out.empty() ? "" : ", ") + root;
  return out.empty() ? "none" : out;
}

void PathRoots::Add(const PathRoots& other) {
  for (const std::string& root : other.roots_) {
    if (std::find(roots_.begin(), roots_.end(), root) == roots_.end()) roots_.push_back(root);
  }
  if (flag_.empty()) {
    flag_ = other.flag_;
  } else if (!other.flag_.empty() && other.flag_ != flag_) {
    flag_ += ", " + other.flag_;
  }
}

}  // namespace maestro
