// The order in which training visits samples, identical for any number of ranks.
//
// Epoch e's order is a permutation of [0, N) that is a pure function of (seed, e). Global step
// b of the epoch takes positions [b*G, (b+1)*G) of it (G = global batch; a last partial batch
// is dropped), and rank r of W takes positions [b*G + r*G/W, b*G + (r+1)*G/W). So the samples
// of a step, and their order, do not depend on W, and a position (epoch, step) is all a
// checkpoint needs to resume the stream. Not thread-safe (caches the current epoch's order).
#pragma once

#include <cstdint>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::dataloader {

class EpochSampler {
 public:
  // INVALID_ARGUMENT (thrown as Error) unless 0 < global_batch <= dataset_size.
  EpochSampler(int64_t dataset_size, int64_t global_batch, uint64_t seed);

  int64_t dataset_size() const { return dataset_size_; }
  int64_t global_batch() const { return global_batch_; }
  int64_t steps_per_epoch() const { return dataset_size_ / global_batch_; }

  // The permutation of epoch `epoch`.
  const std::vector<int64_t>& EpochOrder(int64_t epoch);
  // Rank `rank` of `world_size`'s indices for step `step` of `epoch`. world_size must divide
  // the global batch (INVALID_ARGUMENT, thrown, otherwise).
  std::vector<int64_t> RankBatch(int64_t epoch, int64_t step, int64_t rank, int64_t world_size);

 private:
  int64_t dataset_size_, global_batch_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace maestro::dataloader
