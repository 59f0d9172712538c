#include "maestro/dataloader/sampler.h"

#include <numeric>

#include "maestro/shared/rng.h"

namespace maestro::dataloader {

// Stream purposes: keeps the shuffle's randomness apart from every other use of the seed.
constexpr uint64_t kShufflePurpose = 0x5348554646ULL;  // "SHUFF"

EpochSampler::EpochSampler(int64_t dataset_size, int64_t global_batch, uint64_t seed)
    : dataset_size_(dataset_size), global_batch_(global_batch), seed_(seed) {
  if (global_batch <= 0 || global_batch > dataset_size) {
    throw Error(InvalidArgumentError("global batch " + std::to_string(global_batch) +
                                     " must be in [1, dataset size " +
                                     std::to_string(dataset_size) + "]"));
  }
}

const std::vector<int64_t>& EpochSampler::EpochOrder(int64_t epoch) {
  if (epoch != cached_epoch_) {
    order_.resize(static_cast<size_t>(dataset_size_));
    std::iota(order_.begin(), order_.end(), 0);
    // Fisher-Yates with a counter-based stream keyed by (seed, epoch).
    CounterRng rng(HashKey({seed_, static_cast<uint64_t>(epoch), kShufflePurpose}));
    for (int64_t i = dataset_size_ - 1; i > 0; --i) {
      auto j = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(i + 1)));
      std::swap(order_[static_cast<size_t>(i)], order_[static_cast<size_t>(j)]);
    }
    cached_epoch_ = epoch;
  }
  return order_;
}

std::vector<int64_t> EpochSampler::RankBatch(int64_t epoch, int64_t step, int64_t rank,
                                             int64_t world_size) {
  if (world_size <= 0 || global_batch_ % world_size != 0 || rank < 0 || rank >= world_size) {
    throw Error(
        InvalidArgumentError("rank " + std::to_string(rank) + " of " + std::to_string(world_size) +
                             " cannot split a global batch of " + std::to_string(global_batch_)));
  }
  if (step < 0 || step >= steps_per_epoch()) {
    throw Error(InvalidArgumentError("step " + std::to_string(step) + " outside the epoch's " +
                                     std::to_string(steps_per_epoch()) + " steps"));
  }
  const auto& order = EpochOrder(epoch);
  const int64_t per_rank = global_batch_ / world_size;
  const int64_t begin = step * global_batch_ + rank * per_rank;
  return std::vector<int64_t>(order.begin() + begin, order.begin() + begin + per_rank);
}

}  // namespace maestro::dataloader
