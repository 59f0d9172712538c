// Fine-tuning, partial fine-tuning and linear probing as a TrainingJob, following the official
// main_finetune.py / main_linprobe.py: a ViT classifier over the pretrained encoder (decoder
// dropped, new head), AdamW with layer-wise lr decay or LARS on the head, RandAugment + random
// erasing per sample, Mixup/CutMix + label smoothing per batch, and top-1 / top-5 on the
// held-out split after every epoch.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <ostream>

#include "job.h"
#include "maestro/checkpoint/checkpoint_dir.h"
#include "maestro/checkpoint/hf_vit_mae.h"
#include "maestro/checkpoint/torch_bridge.h"
#include "maestro/dataloader/mixup.h"
#include "maestro/dataloader/transform.h"
#include "maestro/engine/adamw.h"
#include "maestro/engine/lars.h"
#include "maestro/engine/pretrained.h"
#include "maestro/model/autocast.h"
#include "maestro/model/vit.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/rng.h"
#include "maestro/shared/sha256.h"

namespace maestro::engine {
namespace {

constexpr uint64_t kErasePurpose = 0x45524153ULL;  // "ERAS"

// Encoder weights with official MAE names, and where they came from.
struct EncoderWeights {
  checkpoint::TensorMap tensors;
  Json provenance;
};

bool HasHfNames(const checkpoint::TensorMap& tensors) {
  for (const auto& [name, tensor] : tensors) {
    if (name.starts_with("vit.") || name.starts_with("embeddings.") || name.starts_with("encoder."))
      return true;
  }
  return false;
}

Result<EncoderWeights> ReadWeightsFile(const std::string& file, Json::Object provenance) {
  MAESTRO_ASSIGN_OR_RETURN(std::string bytes, ReadFile(file));
  auto content = checkpoint::ParseSafetensors(bytes);
  if (!content.ok()) return content.status().WithContext(file);
  EncoderWeights out;
  out.tensors = std::move(content->tensors);
  if (HasHfNames(out.tensors)) {
    auto imported = checkpoint::ImportHfVitMae(out.tensors);
    if (!imported.ok()) return imported.status().WithContext(file);
    out.tensors = std::move(*imported);
    if (!provenance.count("source")) provenance["source"] = Json("Hugging Face ViTMAE weights");
  }
  if (!provenance.count("source")) provenance["source"] = Json("safetensors, official MAE names");
  provenance["weights"] = Json(file);
  provenance["sha256"] = Json(Sha256Hex(bytes));
  out.provenance = Json(std::move(provenance));
  return out;
}

// `classify.pretrained`: a maestro checkpoint folder, a checkpoint location, a Hugging Face
// folder or a .safetensors file.
Result<EncoderWeights> ReadEncoderWeights(const std::string& path) {
  if (!PathExists(path)) return NotFoundError("classify.pretrained: " + path + " does not exist");
  if (!IsDirectory(path)) return ReadWeightsFile(path, {{"path", Json(path)}});
  if (PathExists(path + "/" + checkpoint::kManifestFile)) {
    auto manifest = checkpoint::VerifyCheckpoint(path);
    if (!manifest.ok()) return manifest.status().WithContext("classify.pretrained " + path);
    return ReadWeightsFile(path + "/model.safetensors", {{"path", Json(path)},
                                                         {"source", Json("maestro checkpoint")},
                                                         {"step", Json(manifest->step)}});
  }
  if (PathExists(path + "/config.json")) {
    return ReadWeightsFile(path + "/model.safetensors",
                           {{"path", Json(path)}, {"source", Json("Hugging Face ViTMAE folder")}});
  }
  // A checkpoint location: its newest valid checkpoint.
  MAESTRO_ASSIGN_OR_RETURN(auto storage, checkpoint::OpenStorage(path));
  MAESTRO_ASSIGN_OR_RETURN(auto latest, checkpoint::FindLatestValid(*storage, nullptr));
  if (!latest) {
    return NotFoundError("classify.pretrained: " + path +
                         " holds no valid checkpoint, no config.json (Hugging Face) and no "
                         "manifest.json (maestro checkpoint)");
  }
  return ReadEncoderWeights(latest->path);
}

class ClassifyJob : public TrainingJob {
 public:
  explicit ClassifyJob(const TrainConfig& config) : config_(config), k_(config.classify) {}

  Status Build(torch::Device device, int64_t world_size, bool load_pretrained,
               std::ostream& out) override {
    device_ = device;
    linprobe_ = config_.job == kJobLinprobe;
    model::VitOptions vo = model::VitOptions::FromMae(config_.model, k_.num_classes);
    vo.global_pool = k_.global_pool;
    vo.drop_path_rate = k_.drop_path;
    vo.head_batchnorm = linprobe_;
    vo.head_init_std = linprobe_ ? 0.01 : 2e-5;
    model_ = model::VisionTransformer(vo);

    auto eval_data = config_.data;
    eval_data.split = k_.eval_split;
    MAESTRO_ASSIGN_OR_RETURN(eval_set_, OpenDataset(eval_data));
    if (eval_set_->identity().num_classes > k_.num_classes) {
      return InvalidArgumentError("classify.num_classes is " + std::to_string(k_.num_classes) +
                                  " but " + eval_set_->identity().name + " has " +
                                  std::to_string(eval_set_->identity().num_classes) + " classes");
    }

    if (k_.pretrained == "none") {
      provenance_ = Json(
          Json::Object{{"path", Json("none")}, {"source", Json("randomly initialized encoder")}});
    } else if (load_pretrained) {
      MAESTRO_ASSIGN_OR_RETURN(EncoderWeights weights, ReadEncoderWeights(k_.pretrained));
      if (Status s = LoadMaeEncoderIntoVit(model_, weights.tensors); !s.ok()) {
        return InvalidArgumentError(
            "classify.pretrained " + k_.pretrained + " does not fit the configured encoder (" +
            config_.model_preset + ", embed_dim " + std::to_string(config_.model.embed_dim) +
            ", depth " + std::to_string(config_.model.depth) + "): " + s.message());
      }
      provenance_ = weights.provenance;
      out << "encoder from " << k_.pretrained << " (" << provenance_.Find("source")->as_string()
          << ", sha256 " << provenance_.Find("sha256")->as_string().substr(0, 16) << ")\n";
    }
    Freeze();
    model_->to(device);
    model_->train();

    NamedParameters trainable;
    int64_t count = 0;
    for (const auto& item : model_->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      trainable.emplace_back(item.key(), item.value());
      count += item.value().numel();
    }
    std::vector<ParamGroup> groups;
    if (config_.optim.optimizer == "lars") {
      groups.push_back({"lars", config_.optim.weight_decay, 1.0, trainable});
      optimizer_ = std::make_unique<Lars>(groups, LarsOptions{});
    } else {
      groups = LayerDecayGroups(trainable, config_.model.depth, config_.optim.weight_decay,
                                k_.layer_decay);
      optimizer_ =
          std::make_unique<AdamW>(groups, AdamWOptions{config_.optim.beta1, config_.optim.beta2});
    }
    out << config_.job << " " << config_.model_preset << " -> " << k_.num_classes << " classes ("
        << (k_.global_pool ? "global pool + fc_norm" : "cls token") << "): " << count
        << " trainable parameters"
        << (linprobe_             ? ", encoder frozen (linear probe)"
            : k_.tune_blocks >= 0 ? ", last " + std::to_string(k_.tune_blocks) + " blocks tuned"
                                  : "")
        << "; peak lr " << config_.peak_lr(world_size) << " (global batch "
        << config_.global_batch(world_size) << "); " << config_.optim.optimizer << " groups:\n"
        << DescribeGroups(groups) << std::endl;

    mixup_.mixup_alpha = k_.mixup;
    mixup_.cutmix_alpha = k_.cutmix;
    mixup_.prob = k_.mixup_prob;
    mixup_.switch_prob = k_.mixup_switch_prob;
    mixup_.label_smoothing = k_.label_smoothing;
    mixup_.num_classes = k_.num_classes;
    normalize_ = PixelNormalizer(config_.data, device);
    return OkStatus();
  }

  torch::nn::Module& module() override { return *model_; }
  Optimizer& optimizer() override { return *optimizer_; }

  void ConfigureStream(dataloader::StreamOptions& stream) const override {
    stream.num_patches = 0;
    auto& a = stream.augment;
    a.randaug.num_ops = k_.randaug_ops;
    a.randaug.magnitude = k_.randaug_magnitude;
    a.randaug.magnitude_std = k_.randaug_magnitude_std;
    a.randaug.prob = 0.5;
    a.randaug.fill.clear();
    for (double m : config_.data.mean)  // timm's img_mean
      a.randaug.fill.push_back(static_cast<uint8_t>(std::min(255.0, std::round(255.0 * m))));
  }

  torch::Tensor Loss(const dataloader::Batch& batch, torch::Tensor images,
                     uint64_t step_key) override {
    if (k_.reprob > 0) {
      for (size_t i = 0; i < batch.indices.size(); ++i) {
        auto image = images[static_cast<int64_t>(i)];
        dataloader::RandomErase(image, k_.reprob,
                                HashKey({config_.run.seed, static_cast<uint64_t>(batch.epoch),
                                         static_cast<uint64_t>(batch.indices[i]), kErasePurpose}));
      }
    }
    auto labels = batch.labels.to(device_);
    const bool soft = mixup_.enabled() || k_.label_smoothing > 0;
    torch::Tensor targets;
    if (soft) {
      auto draw = dataloader::SampleMixup(mixup_, images.size(2), images.size(3), step_key);
      targets = dataloader::ApplyMixup(images, labels, draw, mixup_);
    }
    auto logits = Logits(images).to(torch::kFloat32);
    if (!soft) return torch::nn::functional::cross_entropy(logits, labels);
    return (-targets * torch::log_softmax(logits, -1)).sum(-1).mean();
  }

  Result<Json> Evaluate() override {
    torch::NoGradGuard no_grad;
    model_->eval();
    const int64_t n = k_.eval_max_samples > 0 ? std::min(k_.eval_max_samples, eval_set_->size())
                                              : eval_set_->size();
    const int64_t k = std::min<int64_t>(5, k_.num_classes);
    double loss_sum = 0;
    int64_t top1 = 0, top5 = 0;
    const bool bf16 = config_.run.precision == "bf16";
    for (int64_t start = 0; start < n; start += k_.eval_batch_size) {
      const int64_t count = std::min(k_.eval_batch_size, n - start);
      std::vector<torch::Tensor> images(static_cast<size_t>(count));
      std::vector<int64_t> labels(static_cast<size_t>(count));
      std::string failure;
      std::mutex failure_mutex;
      at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          auto sample = eval_set_->Get(start + i);
          if (!sample.ok()) {
            std::lock_guard<std::mutex> lock(failure_mutex);
            failure = sample.status().ToString();
            return;
          }
          images[static_cast<size_t>(i)] =
              dataloader::EvalTransform(*sample, config_.model.img_size, k_.eval_crop_pct);
          labels[static_cast<size_t>(i)] = sample->label;
        }
      });
      if (!failure.empty()) {
        model_->train();
        return DataLossError("evaluation data: " + failure);
      }
      auto x = normalize_(torch::stack(images));
      auto y = torch::tensor(labels, torch::kInt64).to(device_);
      torch::Tensor logits;
      {
        model::AutocastGuard autocast(device_.type(), bf16);
        logits = model_->forward(x);
      }
      logits = logits.to(torch::kFloat32);
      loss_sum +=
          torch::nn::functional::cross_entropy(
              logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
              .item<double>();
      auto predicted = std::get<1>(logits.topk(k, 1));  // (B, k), best first
      auto hits = predicted.eq(y.view({-1, 1}));
      top1 += hits.select(1, 0).sum().item<int64_t>();
      top5 += hits.any(1).sum().item<int64_t>();
    }
    model_->train();
    const double total = static_cast<double>(n);
    return Json(Json::Object{{"top1", 100.0 * static_cast<double>(top1) / total},
                             {"top5", 100.0 * static_cast<double>(top5) / total},
                             {"loss", loss_sum / total},
                             {"samples", n},
                             {"split", k_.eval_split}});
  }

  Json Provenance() const override { return provenance_; }
  void RestoreProvenance(const Json& recorded) override { provenance_ = recorded; }

 private:
  // Linear probing trains the head only; partial fine-tuning the last tune_blocks blocks plus
  // the final norm (or fc_norm) and the head.
  void Freeze() {
    if (!linprobe_ && k_.tune_blocks < 0) return;
    const int64_t first_tuned =
        linprobe_ ? config_.model.depth : config_.model.depth - k_.tune_blocks;
    for (auto& item : model_->named_parameters()) {
      const std::string& name = item.key();
      bool train = name.starts_with("head.");
      if (!linprobe_) {
        train = train || name.starts_with("norm.") || name.starts_with("fc_norm.") ||
                (name.starts_with("blocks.") &&
                 VitLayerId(name, config_.model.depth + 1) - 1 >= first_tuned);
      }
      item.value().set_requires_grad(train);
    }
  }

  torch::Tensor Logits(const torch::Tensor& images) {
    model::AutocastGuard autocast(device_.type(), config_.run.precision == "bf16");
    if (linprobe_) {
      torch::Tensor features;
      {
        torch::NoGradGuard frozen;  // no graph through the frozen encoder
        features = model_->forward_features(images);
      }
      return model_->forward_head(features);
    }
    return model_->forward(images);
  }

  const TrainConfig& config_;
  const ClassifyConfig& k_;
  torch::Device device_{torch::kCPU};
  bool linprobe_ = false;
  model::VisionTransformer model_{nullptr};
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<dataloader::Dataset> eval_set_;
  dataloader::MixupOptions mixup_;
  PixelNormalizer normalize_;
  Json provenance_;
};

}  // namespace

std::unique_ptr<TrainingJob> MakeClassifyJob(const TrainConfig& config) {
  return std::make_unique<ClassifyJob>(config);
}

}  // namespace maestro::engine
