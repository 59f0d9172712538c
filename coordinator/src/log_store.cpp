#include "maestro/coordinator/log_store.h"

#include <algorithm>

namespace maestro::coordinator {

int64_t TrialLogStore::Append(const LogPiece& piece, Change& change) {
  const AttemptRef ref{piece.trial, piece.attempt};
  auto length = lengths_.find(ref);
  if (length == lengths_.end()) {
    int64_t stored = 0;
    for (const auto& chunk : store_.Logs(piece.trial)) {
      if (chunk.attempt == piece.attempt) {
        stored = chunk.offset + static_cast<int64_t>(chunk.data.size());
      }
    }
    length = lengths_.emplace(ref, stored).first;
  }
  if (piece.offset == length->second && !piece.data.empty()) {
    change.AddLog(piece.trial, piece.attempt, piece.offset, piece.data);
    length->second += static_cast<int64_t>(piece.data.size());
  }
  return length->second;
}

Result<TrialLogs> TrialLogStore::Read(int64_t trial, int64_t offset, int64_t max_bytes) const {
  if (offset < 0) return InvalidArgumentError("offset: negative");
  if (max_bytes <= 0) max_bytes = 1 << 20;
  TrialLogs out;
  int64_t position = 0;
  for (const LogChunkRecord& chunk : store_.Logs(trial)) {
    const int64_t size = static_cast<int64_t>(chunk.data.size());
    if (position + size > offset && static_cast<int64_t>(out.data.size()) < max_bytes) {
      const int64_t from = std::max<int64_t>(0, offset - position);
      const int64_t take =
          std::min<int64_t>(size - from, max_bytes - static_cast<int64_t>(out.data.size()));
      out.data.append(chunk.data, from, take);
    }
    position += size;
  }
  out.next_offset = std::min(offset, position) + static_cast<int64_t>(out.data.size());
  return out;
}

}  // namespace maestro::coordinator
