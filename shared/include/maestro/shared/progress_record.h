// The trainer's progress and heartbeat record: the one channel from a trainer to the worker
// daemon that runs it. Each rank appends one JSON object per line to the file the daemon names
// in MAESTRO_PROGRESS_FILE (a single write per line, O_APPEND, so ranks sharing the file never
// interleave): at the start of training, every log.interval_steps optimizer steps, and at the
// end. The daemon reads new complete lines with ParseProgressRecord (our JSON reader) and
// reports rank 0's figures to the coordinator; the human-readable progress line in the log is
// for people only and is never parsed.
//
//   {"v":1,"phase":"train","rank":0,"step":40,"total_steps":235,"epoch":0.34,"loss":0.1234,
//    "lr":0.0001234,"images_per_s":1234,"time_ms":1796601600000}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "maestro/shared/status.h"

namespace maestro {

inline constexpr int64_t kProgressRecordVersion = 1;
// The environment variable naming the progress file (unset: no records are written).
inline constexpr char kProgressFileEnv[] = "MAESTRO_PROGRESS_FILE";

struct ProgressRecord {
  // "start" (before the first step; no figures yet), "train" (a progress line's figures),
  // "done" (after the last step: the last progress line's figures again).
  std::string phase;
  int64_t rank = 0;
  int64_t step = 0, total_steps = 0;  // optimizer steps
  double epoch = 0, loss = 0, lr = 0, images_per_second = 0;
  int64_t time_ms = 0;  // wall clock
};

// One line of JSON, without the newline.
std::string FormatProgressRecord(const ProgressRecord& record);
// INVALID_ARGUMENT for a line that is not such a record (not JSON, another version, a field
// missing or of the wrong type, an unknown phase, a negative step or rank).
Result<ProgressRecord> ParseProgressRecord(std::string_view line);

// Appends `record` and a newline to `path` in one write (O_APPEND; created 0600). Errors are
// returned, for the trainer to report once: progress is never a reason to stop training.
Status AppendProgressRecord(const std::string& path, const ProgressRecord& record);

}  // namespace maestro
