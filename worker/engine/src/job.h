// Inside maestro_engine: what differs between the job kinds that share the trainer loop
// (trainer.cpp). Pretraining (pretrain_job.cpp) and classification, i.e. fine-tuning, partial
// fine-tuning and linear probing (classify_job.cpp), each build a model and optimizer, shape the
// data stream, compute a micro-batch loss and, for classification, evaluate. Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <iosfwd>
#include <memory>

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/loader.h"
#include "maestro/shared/train_config.h"
#include "maestro/engine/data.h"
#include "maestro/engine/optimizer.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

// uint8 images (N, C, H, W) -> float on the device, normalized with config.data's per-channel
// mean and std of [0, 1] pixels (the trainer's batches and the classifier's evaluation).
class PixelNormalizer {
 public:
  PixelNormalizer() = default;
  PixelNormalizer(const DataConfig& data, torch::Device device)
      : device_(device),
        mean_(torch::tensor(data.mean, torch::kFloat32).view({1, -1, 1, 1}).to(device)),
        std_(torch::tensor(data.std, torch::kFloat32).view({1, -1, 1, 1}).to(device)) {}
  torch::Tensor operator()(const torch::Tensor& images) const {
    return (images.to(device_).to(torch::kFloat32).div_(255.0) - mean_) / std_;
  }

 private:
  torch::Device device_{torch::kCPU};
  torch::Tensor mean_, std_;
};

class TrainingJob {
 public:
  virtual ~TrainingJob() = default;

  // Builds the model on `device` and its optimizer. `load_pretrained` is false when a checkpoint
  // of this run will be restored over the weights anyway. Prints what it built to `out`.
  virtual Status Build(torch::Device device, int64_t world_size, bool load_pretrained,
                       std::ostream& out) = 0;
  virtual torch::nn::Module& module() = 0;
  virtual Optimizer& optimizer() = 0;

  // The job's part of the training stream (mask noise, extra augmentation); the trainer has
  // set the crop, resize and flip from config.data already.
  virtual void ConfigureStream(dataloader::StreamOptions& stream) const = 0;

  // The loss of one micro-batch in train mode; `images` are normalized float on the device and
  // may be modified. `step_key` keys the randomness of this micro-step (mixup).
  virtual torch::Tensor Loss(const dataloader::Batch& batch, torch::Tensor images,
                             uint64_t step_key) = 0;

  // Held-out metrics after an epoch (null Json: the job does not evaluate).
  virtual Result<Json> Evaluate() { return Json(); }

  // Where the weights came from, recorded in checkpoints and results (null Json: nothing).
  virtual Json Provenance() const { return Json(); }
  // Restores the provenance recorded in a checkpoint this run resumes from.
  virtual void RestoreProvenance(const Json& /*recorded*/) {}
};

std::unique_ptr<TrainingJob> MakePretrainJob(const TrainConfig& config);
// `config` must outlive the job (it keeps a reference).
std::unique_ptr<TrainingJob> MakeClassifyJob(const TrainConfig& config);


}  // namespace maestro::engine
