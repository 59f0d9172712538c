// MAE pretraining as a TrainingJob: the masked autoencoder, AdamW with the official weight-decay
// grouping, the pretraining crop + flip and the per-sample mask noise.
#include <ostream>

#include "job.h"
#include "maestro/engine/adamw.h"
#include "maestro/model/autocast.h"
#include "maestro/model/mae.h"

namespace maestro::engine {
namespace {

class PretrainJob : public TrainingJob {
 public:
  explicit PretrainJob(const TrainConfig& config) : config_(config) {}

  Status Build(torch::Device device, int64_t world_size, bool /*load_pretrained*/,
               std::ostream& out) override {
    model_ = model::MaskedAutoencoderViT(config_.model);
    model_->to(device);
    model_->train();
    NamedParameters named;
    for (const auto& item : model_->named_parameters())
      named.emplace_back(item.key(), item.value());
    const auto groups = WeightDecayGroups(named, config_.optim.weight_decay);
    optimizer_ =
        std::make_unique<AdamW>(groups, AdamWOptions{config_.optim.beta1, config_.optim.beta2});
    out << "model " << config_.model_preset << ": " << model_->num_trainable_parameters()
        << " trainable parameters; peak lr " << config_.peak_lr(world_size) << " (global batch "
        << config_.global_batch(world_size) << "); AdamW groups:\n"
        << DescribeGroups(groups) << std::endl;
    return OkStatus();
  }

  torch::nn::Module& module() override { return *model_; }
  Optimizer& optimizer() override { return *optimizer_; }

  void ConfigureStream(dataloader::StreamOptions& stream) const override {
    stream.num_patches = config_.model.num_patches();
  }

  torch::Tensor Loss(const dataloader::Batch& batch, torch::Tensor images,
                     uint64_t /*step_key*/) override {
    model::AutocastGuard autocast(images.device().type(), config_.run.precision == "bf16");
    return model_->forward(images, batch.mask_noise.to(images.device())).loss;
  }

 private:
  const TrainConfig& config_;
  model::MaskedAutoencoderViT model_{nullptr};
  std::unique_ptr<AdamW> optimizer_;
};

}  // namespace

std::unique_ptr<TrainingJob> MakePretrainJob(const TrainConfig& config) {
  return std::make_unique<PretrainJob>(config);
}

}  // namespace maestro::engine
