// The trainer's progress and heartbeat record: the one channel from a trainer to the worker
// daemon that runs it. Each rank appends one JSON object per line to the file the daemon names
// in MAESTRO_PROGRESS_FILE (a single write per line, O_APPEND, so ranks sharing the file never
// interleave): at the start of training, every log.interval_steps optimizer steps, and at the
// end. The daemon reads new complete lines with ParseProgressRecord (our JSON reader) and
// reports rank 0's figures to the coordinator; the human-readable progress line in the log is
// for people only and is never parsed.
//
//   {"v":1,"phase":"train","rank":0,"step":40,"total_steps":235,"epoch":0.34,"loss":0.1234,
//    "lr":0.0001234,"images_per_s":1234,"time_ms":1796601600000,
//    "steps":10,"samples":320,"step_s":{"sum":1.2,"counts":[0,...]},"data_wait_s":{...},
//    "allreduce_s":{...},"checkpoint_write_s":{...},"grad_norm":0.8,"checkpoint_age_s":12.5,
//    "checkpoint_interval_s":30}
//
// The window fields (steps on) cover the optimizer steps since this rank's previous record;
// durations are counted into kDurationBucketsSeconds (a Prometheus histogram's buckets, so the
// daemon adds them up without the single values). They are optional: a record without them
// has no window figures.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro {

inline constexpr int64_t kProgressRecordVersion = 1;
// The environment variable naming the progress file (unset: no records are written).
inline constexpr char kProgressFileEnv[] = "MAESTRO_PROGRESS_FILE";

// Upper bounds of the duration buckets, in seconds (a last bucket, +Inf, follows).
inline const std::vector<double>& DurationBucketsSeconds() {
  static const std::vector<double> bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60,  300};
  return bounds;
}

// Durations counted into DurationBucketsSeconds() (non-cumulative counts: counts[i] values fell
// in (bounds[i-1], bounds[i]]; the last entry, above the last bound) and their sum.
struct DurationCounts {
  std::vector<int64_t> counts = std::vector<int64_t>(DurationBucketsSeconds().size() + 1, 0);
  double sum = 0;
  void Observe(double seconds);
  int64_t total() const;
};

struct ProgressRecord {
  // "start" (before the first step; no figures yet), "train" (a progress line's figures),
  // "done" (after the last step: the last progress line's figures again).
  std::string phase;
  int64_t rank = 0;
  int64_t step = 0, total_steps = 0;  // optimizer steps
  double epoch = 0, loss = 0, lr = 0, images_per_second = 0;
  int64_t time_ms = 0;  // wall clock
  // The window since this rank's previous record (absent: has_window false).
  bool has_window = false;
  int64_t steps = 0, samples = 0;  // optimizer steps and this rank's samples
  DurationCounts step_s, data_wait_s, allreduce_s, checkpoint_write_s;
  double grad_norm = -1;             // the last step's global gradient norm; -1: not measured
  double checkpoint_age_s = 0;       // since the last committed checkpoint (or the start)
  double checkpoint_interval_s = 0;  // the expected time between checkpoints; 0: unknown
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
