#include "maestro/worker/progress_reader.h"

namespace maestro::worker {

void ProgressReader::Feed(std::string_view bytes) {
  partial_.append(bytes);
  size_t start = 0, end;
  while ((end = partial_.find('\n', start)) != std::string::npos) {
    auto record = ParseProgressRecord(std::string_view(partial_.data() + start, end - start));
    if (record.ok() && record->has_window && windows_.size() < kMaxWindows) {
      windows_.push_back(*record);
    }
    if (record.ok() && record->rank == 0 && record->phase == "train") {
      figures_ = std::move(*record);
    } else if (!record.ok() && first_problem_.empty()) {
      first_problem_ = record.status().message();
    }
    start = end + 1;
  }
  partial_.erase(0, start);
  if (partial_.size() > kMaxLineBytes) partial_.clear();
}

}  // namespace maestro::worker
