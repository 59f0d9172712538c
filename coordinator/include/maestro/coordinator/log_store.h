// The trainers' captured output in the store (log/<trial>/<attempt>/<offset>): each attempt's
// bytes in order, appended only where the stored bytes end (a worker resending what is
// stored is answered with the stored length, nothing stored twice), and read back across a
// trial's attempts. Not thread-safe: the scheduler's lock covers appends; reads go to the
// store.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "maestro/coordinator/attempt.h"
#include "maestro/coordinator/store.h"
#include "maestro/coordinator/worker_pool.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

struct TrialLogs {
  std::string data;
  int64_t next_offset = 0;
  std::string state;
};

class TrialLogStore {
 public:
  explicit TrialLogStore(const Store& store) : store_(store) {}

  // Adds `piece` to `change` when it starts where its attempt's stored bytes end; returns the
  // stored length of that attempt, with the piece counted (the worker's acknowledgement).
  int64_t Append(const LogPiece& piece, Change& change);
  // Up to `max_bytes` (<= 0: 1 MiB) of a trial's output from `offset`, its attempts one after
  // the other; `state` is left to the caller. INVALID_ARGUMENT for a negative offset.
  Result<TrialLogs> Read(int64_t trial, int64_t offset, int64_t max_bytes) const;

 private:
  const Store& store_;
  std::map<AttemptRef, int64_t> lengths_;  // stored bytes per attempt, as learned
};

}  // namespace maestro::coordinator
