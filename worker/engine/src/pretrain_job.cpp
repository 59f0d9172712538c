// MAE pretraining as a TrainingJob: the masked autoencoder, AdamW with the official weight-decay
// grouping, the pretraining crop + flip and the per-sample mask noise.
#include <optional>
#include <ostream>

#include "job.h"
#include "maestro/engine/adamw.h"
#include "maestro/engine/data.h"
#include "maestro/engine/heldout.h"
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
    if (config_.eval.images > 0) {
      DataConfig held_out = config_.data;
      held_out.split = config_.eval.split;
      auto dataset = OpenDataset(held_out);
      if (!dataset.ok()) return dataset.status().WithContext("eval.split " + held_out.split);
      auto images =
          LoadHeldOutImages(**dataset, config_.model, config_.data.mean, config_.data.std,
                            config_.eval.images, static_cast<uint64_t>(config_.eval.mask_seed));
      if (!images.ok()) return images.status().WithContext("eval");
      held_out_ = std::move(*images);
      out << "held-out measure: masked-patch loss on " << held_out_->images.size(0) << " "
          << held_out.split << " images (mask seed " << config_.eval.mask_seed << ")" << std::endl;
    }
    return OkStatus();
  }

  // The held-out masked-patch loss (eval.images > 0), else nothing.
  Result<Json> Evaluate() override {
    if (!held_out_) return Json();
    model_->eval();
    const MaskedLossFigures figures = MeasureMaskedLoss(model_, *held_out_, false);
    model_->train();
    return Json(Json::Object{{"heldout_masked_loss", figures.model_loss},
                             {"heldout_images", held_out_->images.size(0)}});
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
  std::optional<HeldOutImages> held_out_;
};

}  // namespace

std::unique_ptr<TrainingJob> MakePretrainJob(const TrainConfig& config) {
  return std::make_unique<PretrainJob>(config);
}

}  // namespace maestro::engine
