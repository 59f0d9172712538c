#include "maestro/dataloader/loader.h"

namespace maestro::dataloader {

LocalBatchSource::LocalBatchSource(const Dataset& dataset, StreamOptions options,
                                   int64_t start_epoch, int64_t start_step)
    : dataset_(dataset),
      options_(std::move(options)),
      start_epoch_(start_epoch),
      start_step_(start_step) {
  EpochSampler probe(dataset_.size(), options_.global_batch, options_.seed);  // validates sizes
  steps_per_epoch_ = probe.steps_per_epoch();
  if (start_step_ < 0 || start_step_ >= steps_per_epoch_) {
    throw Error(
        InvalidArgumentError("start step " + std::to_string(start_step_) + " outside the epoch"));
  }
  const int64_t n = std::max<int64_t>(1, options_.num_workers);
  for (int64_t w = 0; w < n; ++w) workers_.emplace_back([this, w] { WorkerLoop(w); });
}

LocalBatchSource::~LocalBatchSource() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& worker : workers_) worker.join();
}

Batch LocalBatchSource::Build(int64_t ordinal, EpochSampler& sampler) {
  const int64_t absolute = start_step_ + ordinal;
  Batch batch;
  batch.epoch = start_epoch_ + absolute / steps_per_epoch_;
  batch.step = absolute % steps_per_epoch_;
  batch.indices = sampler.RankBatch(batch.epoch, batch.step, options_.rank, options_.world_size);
  std::vector<torch::Tensor> images, noise;
  std::vector<int64_t> labels;
  for (int64_t& index : batch.indices) {
    // A corrupt sample is replaced by the next readable one (deterministically, so a resumed
    // run sees the same) and reported in batch.skipped.
    for (int64_t attempt = 0;; ++attempt) {
      try {
        int64_t label = 0;
        images.push_back(Augmented(index, batch.epoch, label));
        labels.push_back(label);
        break;
      } catch (const Error& e) {
        if (e.status().code() != StatusCode::kDataLoss || attempt >= kMaxReplacements) throw;
        batch.skipped.push_back("sample " + std::to_string(index) + ": " + e.status().message());
        index = (index + 1) % dataset_.size();
      }
    }
    if (options_.num_patches > 0)
      noise.push_back(MaskNoise(options_.num_patches, options_.seed, batch.epoch, index));
  }
  batch.images = torch::stack(images);
  if (!noise.empty()) batch.mask_noise = torch::stack(noise);
  batch.labels = torch::tensor(labels, torch::kInt64);
  return batch;
}

torch::Tensor LocalBatchSource::Augmented(int64_t index, int64_t epoch, int64_t& label) const {
  if (dataset_.holds_encoded()) {
    auto sample = dataset_.GetEncoded(index);
    if (!sample.ok()) throw Error(sample.status());
    label = sample->label;
    return AugmentEncoded(*sample, options_.augment, options_.seed, epoch);
  }
  auto sample = dataset_.Get(index);
  if (!sample.ok()) throw Error(sample.status());
  label = sample->label;
  return AugmentSample(*sample, options_.augment, options_.seed, epoch);
}

void LocalBatchSource::WorkerLoop(int64_t worker) {
  // Each worker shuffles each epoch once into its own sampler.
  EpochSampler sampler(dataset_.size(), options_.global_batch, options_.seed);
  const int64_t stride = std::max<int64_t>(1, options_.num_workers);
  for (int64_t ordinal = worker;; ordinal += stride) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || ordinal < consumed_ + options_.prefetch; });
      if (stopping_) return;
    }
    try {
      Batch batch = Build(ordinal, sampler);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(ordinal, std::move(batch));
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_.emplace(ordinal, e.what());
    }
    changed_.notify_all();
  }
}

Batch LocalBatchSource::Next() {
  std::unique_lock<std::mutex> lock(mutex_);
  const int64_t want = consumed_;
  changed_.wait(lock, [&] { return ready_.count(want) || failed_.count(want); });
  if (auto it = failed_.find(want); it != failed_.end()) {
    throw Error(DataLossError("building batch " + std::to_string(want) + ": " + it->second));
  }
  Batch batch = std::move(ready_.at(want));
  ready_.erase(want);
  ++consumed_;
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace maestro::dataloader
