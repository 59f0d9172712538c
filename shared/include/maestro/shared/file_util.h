// Whole-file reads and crash-safe whole-file writes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro {

// Reads the whole file. NOT_FOUND when it does not exist, UNAVAILABLE on other I/O errors.
Result<std::string> ReadFile(const std::string& path);

// Writes `data` to `path` so that a crash leaves either the old file or the new one, never a
// mix: writes "<path>.tmp-<pid>" (created afresh with `mode`, so a stale temporary file of
// another mode, or one someone holds open, never receives the bytes), fsyncs it, renames it
// over `path`, fsyncs the directory.
Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);

// POSIX forms of the std::filesystem operations we need. The torch wheel's libtorch.so exports
// its own copies of several std::filesystem symbols (remove_all among them), which win symbol
// resolution in any program linked with it and crash; code that may share a process with
// LibTorch uses these instead (docs/architecture.md, toolchain facts).

// Whether `path` exists (any type) / is a directory.
bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// OK for a regular file (a symlink to one counts); INVALID_ARGUMENT naming what else it is (a
// FIFO, a device, a socket, a folder), NOT_FOUND when it does not exist. Readers of folders
// check this first: opening a FIFO blocks for ever.
Status CheckRegularFile(const std::string& path);
// mkdir -p. FAILED_PRECONDITION naming the component that is in the way or cannot be made.
Status MakeDirectories(const std::string& path);
// rm -rf; OK when `path` does not exist.
Status RemoveTree(const std::string& path);
// Names in a directory (no "." or ".."), unsorted. NOT_FOUND when it does not exist.
Result<std::vector<std::string>> ListDirectory(const std::string& path);
// Size in bytes. NOT_FOUND when missing.
Result<int64_t> FileSize(const std::string& path);
// Fsyncs a directory, so that renames and creations in it survive a crash.
Status FsyncDirectory(const std::string& path);

// The last component of `path`, trailing slashes ignored ("data/fmnist/" -> "fmnist").
std::string BaseName(const std::string& path);
// The folder holding `path`: "." for a bare name, "/" for a top-level one ("a/b.yaml" -> "a").
std::string DirName(const std::string& path);
// `path` made absolute against the current folder (no symlink resolution); unchanged when it
// is absolute already or the current folder cannot be read.
std::string AbsolutePath(const std::string& path);
// The program `name` in the folder of the running program (maestro-train beside
// maestro-worker, say); `name` itself when /proc/self/exe cannot be read.
std::string SiblingProgram(const std::string& name);

}  // namespace maestro
