#include "maestro/dataloader/loader.h"

#include <type_traits>

namespace maestro::dataloader {
namespace {

// A sample read or decoded (encoded: only its crop's region is decoded), augmented with the
// stream's options; sets `label`. Throws the read's error.
template <typename Sample>
torch::Tensor AugmentRead(const Result<Sample>& sample, const StreamOptions& o, int64_t epoch,
                          int64_t& label) {
  if (!sample.ok()) throw Error(sample.status());
  label = sample->label;
  if constexpr (std::is_same_v<Sample, EncodedSample>) {
    return AugmentEncoded(*sample, o.augment, o.seed, epoch);
  } else {
    return AugmentSample(*sample, o.augment, o.seed, epoch);
  }
}

}  // namespace

LocalBatchSource::LocalBatchSource(const Dataset& dataset, StreamOptions options,
                                   int64_t start_epoch, int64_t start_step)
    : dataset_(dataset),
      options_(std::move(options)),
      start_epoch_(start_epoch),
      start_step_(start_step) {
  Start();
}

LocalBatchSource::LocalBatchSource(const Dataset& dataset, std::unique_ptr<RecordStream> records,
                                   StreamOptions options, int64_t start_epoch, int64_t start_step)
    : dataset_(dataset),
      stream_(std::move(records)),
      options_(std::move(options)),
      start_epoch_(start_epoch),
      start_step_(start_step) {
  Start();
}

void LocalBatchSource::Start() {
  EpochSampler probe(dataset_.size(), options_.global_batch, options_.seed);  // validates sizes
  steps_per_epoch_ = probe.steps_per_epoch();
  if (start_step_ < 0 || start_step_ >= steps_per_epoch_) {
    throw Error(
        InvalidArgumentError("start step " + std::to_string(start_step_) + " outside the epoch"));
  }
  if (stream_) feeder_ = std::thread([this] { FeederLoop(); });
  const int64_t n = std::max<int64_t>(1, options_.num_workers);
  for (int64_t w = 0; w < n; ++w) workers_.emplace_back([this, w] { WorkerLoop(w); });
}

LocalBatchSource::~LocalBatchSource() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (stream_) stream_->Cancel();
  if (feeder_.joinable()) feeder_.join();
  for (auto& worker : workers_) worker.join();
}

void LocalBatchSource::FeederLoop() {
  const int64_t per_rank = options_.global_batch / options_.world_size;
  const int64_t ahead = options_.prefetch + std::max<int64_t>(1, options_.num_workers);
  for (int64_t ordinal = 0;; ++ordinal) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || ordinal < consumed_ + ahead; });
      if (stopping_) return;
    }
    const int64_t absolute = start_step_ + ordinal;
    const int64_t epoch = start_epoch_ + absolute / steps_per_epoch_;
    const int64_t first_cursor = absolute % steps_per_epoch_ * per_rank;
    std::vector<StreamedRecord> group(static_cast<size_t>(per_rank));
    Status error;
    for (int64_t slot = 0; slot < per_rank && error.ok(); ++slot) {
      StreamedRecord& record = group[static_cast<size_t>(slot)];
      auto more = stream_->Next(record);
      if (!more.ok()) {
        error = more.status();
      } else if (!*more) {
        error = UnavailableError("the record stream ended");
      } else if (record.epoch != epoch || record.cursor != first_cursor + slot) {
        error = InternalError(
            "the record stream is out of place: got (epoch " + std::to_string(record.epoch) +
            ", cursor " + std::to_string(record.cursor) + "), expected (" + std::to_string(epoch) +
            ", " + std::to_string(first_cursor + slot) + ")");
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error.ok()) {
        records_.emplace(ordinal, std::move(group));
      } else {
        feed_error_ = error;
      }
    }
    changed_.notify_all();
    if (!error.ok()) return;
  }
}

Batch LocalBatchSource::Build(int64_t ordinal, EpochSampler* sampler,
                              std::vector<StreamedRecord>* records) {
  const int64_t absolute = start_step_ + ordinal;
  Batch batch;
  batch.epoch = start_epoch_ + absolute / steps_per_epoch_;
  batch.step = absolute % steps_per_epoch_;
  if (records != nullptr) {
    for (const auto& record : *records) batch.indices.push_back(record.index);
  } else {
    batch.indices = sampler->RankBatch(batch.epoch, batch.step, options_.rank, options_.world_size);
  }
  std::vector<torch::Tensor> images, noise;
  std::vector<int64_t> labels;
  for (size_t slot = 0; slot < batch.indices.size(); ++slot) {
    int64_t& index = batch.indices[slot];
    // A corrupt sample is replaced by the next readable one (deterministically, so a resumed
    // run sees the same) and reported in batch.skipped.
    for (int64_t attempt = 0;; ++attempt) {
      try {
        int64_t label = 0;
        images.push_back(records != nullptr && attempt == 0
                             ? AugmentedRecord((*records)[slot].value, index, batch.epoch, label)
                             : Augmented(index, batch.epoch, label));
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
  if (dataset_.holds_encoded())
    return AugmentRead(dataset_.GetEncoded(index), options_, epoch, label);
  return AugmentRead(dataset_.Get(index), options_, epoch, label);
}

torch::Tensor LocalBatchSource::AugmentedRecord(const std::string& value, int64_t index,
                                                int64_t epoch, int64_t& label) const {
  auto format = RecordFormatOf(value, index);
  if (!format.ok()) throw Error(format.status());
  if (*format == RecordFormat::kRawU8) {
    return AugmentRead(DecodeRecord(value, index), options_, epoch, label);
  }
  return AugmentRead(DecodeEncodedRecord(value, index), options_, epoch, label);
}

void LocalBatchSource::WorkerLoop(int64_t worker) {
  // Without a stream, each worker shuffles each epoch once into its own sampler.
  std::unique_ptr<EpochSampler> sampler;
  if (!stream_) {
    sampler = std::make_unique<EpochSampler>(dataset_.size(), options_.global_batch, options_.seed);
  }
  const int64_t stride = std::max<int64_t>(1, options_.num_workers);
  for (int64_t ordinal = worker;; ordinal += stride) {
    std::vector<StreamedRecord> records;
    Status feed_error;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || (ordinal < consumed_ + options_.prefetch &&
                             (!stream_ || records_.count(ordinal) > 0 || !feed_error_.ok()));
      });
      if (stopping_) return;
      if (stream_) {
        if (auto it = records_.find(ordinal); it != records_.end()) {
          records = std::move(it->second);
          records_.erase(it);
        } else {
          feed_error = feed_error_;
        }
      }
    }
    try {
      if (!feed_error.ok()) throw Error(feed_error.WithContext("reading records"));
      Batch batch = Build(ordinal, sampler.get(), stream_ ? &records : nullptr);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(ordinal, std::move(batch));
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_.emplace(ordinal, e.status());
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_.emplace(ordinal, DataLossError(e.what()));
    }
    changed_.notify_all();
    if (!feed_error.ok()) return;
  }
}

Batch LocalBatchSource::Next() {
  std::unique_lock<std::mutex> lock(mutex_);
  const int64_t want = consumed_;
  changed_.wait(lock, [&] { return ready_.count(want) || failed_.count(want); });
  if (auto it = failed_.find(want); it != failed_.end()) {
    throw Error(it->second.WithContext("building batch " + std::to_string(want)));
  }
  Batch batch = std::move(ready_.at(want));
  ready_.erase(want);
  ++consumed_;
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace maestro::dataloader
