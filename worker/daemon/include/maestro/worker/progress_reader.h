// Reads a trainer's progress records (shared/progress_record.h) as the trainer appends them:
// bytes in any pieces, complete lines parsed, rank 0's latest "train" record kept as the
// attempt's figures ("start" has none yet, "done" repeats the last), and every rank's records
// with a window (progress_record.h) kept until taken. Not thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "maestro/shared/progress_record.h"

namespace maestro::worker {

class ProgressReader {
 public:
  // Takes the next bytes of the file. An unfinished last line waits for the rest; a line
  // longer than kMaxLineBytes without a newline is dropped.
  void Feed(std::string_view bytes);
  const std::optional<ProgressRecord>& figures() const { return figures_; }
  // The records with a window (any rank) since the last call, in order.
  std::vector<ProgressRecord> TakeWindows() { return std::exchange(windows_, {}); }
  // The first line that was not a progress record, and why ("" when none).
  const std::string& first_problem() const { return first_problem_; }

  static constexpr size_t kMaxLineBytes = 64 * 1024;
  static constexpr size_t kMaxWindows = 4096;  // untaken windows beyond this are dropped

 private:
  std::string partial_;
  std::optional<ProgressRecord> figures_;
  std::vector<ProgressRecord> windows_;
  std::string first_problem_;
};

}  // namespace maestro::worker
