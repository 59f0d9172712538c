// Whole-file reads and crash-safe whole-file writes.
#pragma once

#include <string>
#include <string_view>

#include "maestro/shared/status.h"

namespace maestro {

// Reads the whole file. NOT_FOUND when it does not exist, UNAVAILABLE on other I/O errors.
Result<std::string> ReadFile(const std::string& path);

// Writes `data` to `path` so that a crash leaves either the old file or the new one, never a
// mix: writes "<path>.tmp-<pid>", fsyncs it, renames it over `path`, fsyncs the directory.
Status WriteFileAtomic(const std::string& path, std::string_view data);

}  // namespace maestro
