// The batch stream a trainer consumes: for each step from a start position, this rank's
// samples (sampler.h), augmented, with their mask noise, assembled by worker threads ahead
// of use. Batches arrive in step order and are identical whatever the thread count.
//
// A BatchSource is what the engine sees. LocalBatchSource reads a Dataset in this process, or
// takes its records from a RecordStream (records.h: the local shard reader or the data
// service) that delivers this rank's records in the sampler's order; both give the same batches.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/records.h"
#include "maestro/dataloader/sampler.h"
#include "maestro/dataloader/transform.h"

namespace maestro::dataloader {

struct Batch {
  int64_t epoch = 0;
  int64_t step = 0;  // global step within the epoch
  std::vector<int64_t> indices;
  torch::Tensor images;      // (B, C, S, S) uint8
  torch::Tensor labels;      // (B,) int64
  torch::Tensor mask_noise;  // (B, L) float32 in [0, 1); undefined when num_patches is 0
  // Corrupt samples replaced in this batch (by the next readable index), with the reason.
  std::vector<std::string> skipped;
};

struct StreamOptions {
  uint64_t seed = 0;
  int64_t global_batch = 256;
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t num_patches = 196;  // mask noise per sample (0: none, for classification)
  AugmentOptions augment;
  int64_t num_workers = 1;
  int64_t prefetch = 4;  // batches built ahead of the consumer
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t steps_per_epoch() const = 0;
  // The next batch in order. Corrupt samples are replaced and listed in Batch::skipped; other
  // errors are thrown as maestro::Error (UNAVAILABLE when the record stream failed, e.g. the
  // data service went away; DATA_LOSS for unreadable data).
  virtual Batch Next() = 0;
};

class LocalBatchSource : public BatchSource {
 public:
  // Streams from (start_epoch, start_step). `dataset` must outlive this object.
  LocalBatchSource(const Dataset& dataset, StreamOptions options, int64_t start_epoch,
                   int64_t start_step);
  // Streams the records of `records`, which must be this rank's stream from (start_epoch,
  // cursor start_step * global_batch / world_size) with options' seed and batch (a record out
  // of place fails the batch). `dataset` (the same data, random access) serves the
  // replacements of corrupt samples. A feeder thread reads the stream, at most prefetch +
  // num_workers batches ahead.
  LocalBatchSource(const Dataset& dataset, std::unique_ptr<RecordStream> records,
                   StreamOptions options, int64_t start_epoch, int64_t start_step);
  ~LocalBatchSource() override;
  LocalBatchSource(const LocalBatchSource&) = delete;
  LocalBatchSource& operator=(const LocalBatchSource&) = delete;

  int64_t steps_per_epoch() const override { return steps_per_epoch_; }
  Batch Next() override;

 private:
  // The n-th batch from the start (epoch and step derived from it), from the streamed records
  // when `records` is given, else from the sampler's indices read from the dataset.
  Batch Build(int64_t ordinal, EpochSampler* sampler, std::vector<StreamedRecord>* records);
  // Sample `index` augmented for `epoch` (only the crop's region decoded when the dataset holds
  // JPEGs); sets `label`. Throws maestro::Error.
  torch::Tensor Augmented(int64_t index, int64_t epoch, int64_t& label) const;
  // The same from a stored record's value.
  torch::Tensor AugmentedRecord(const std::string& value, int64_t index, int64_t epoch,
                                int64_t& label) const;
  void Start();
  // Reads the stream into records_, group by group.
  void FeederLoop();
  // How many following samples a corrupt one may be replaced with before the batch fails.
  static constexpr int64_t kMaxReplacements = 16;
  void WorkerLoop(int64_t worker);

  const Dataset& dataset_;
  std::unique_ptr<RecordStream> stream_;  // null: read the dataset by index
  StreamOptions options_;
  int64_t start_epoch_, start_step_, steps_per_epoch_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, Status> failed_;
  std::map<int64_t, std::vector<StreamedRecord>> records_;  // streamed, not yet built
  Status feed_error_;                                       // set when the feeder stopped
  int64_t consumed_ = 0;                                    // ordinals handed to the consumer
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::thread feeder_;
};

}  // namespace maestro::dataloader
