// maestro-train's configuration: one YAML file (plus --set key=value overrides) read into
// typed structs. Unknown keys and wrong types are errors naming the dotted key. The fields
// cover the paper's Table 8 (pretraining), Table 9 (fine-tuning) and Table 10 (linear
// probing); the defaults depend on the job kind. Plain data.
#pragma once

#include <string>
#include <vector>

#include "maestro/shared/model_options.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

struct DataConfig {
  std::string source = "fashion-mnist";  // the dataset kind
  std::string path = "/usr/share/datasets/fashion-mnist";
  std::string split = "train";
  // source shards only: a maestro-data server (host:port) to stream from instead of reading
  // `path` from disk, and the dataset's name there (default: the last component of `path`).
  std::string service;
  std::string dataset;
  double crop_scale_min = 0.2;  // RandomResizedCrop area range
  double crop_scale_max = 1.0;
  bool hflip = true;
  std::vector<double> mean = {0.2860};  // per channel, on [0, 1] pixels
  std::vector<double> std = {0.3530};
  int64_t num_workers = 1;  // decode/augment threads
};

// The job kinds of maestro-train.
inline constexpr const char* kJobPretrain = "pretrain";
inline constexpr const char* kJobFinetune = "finetune";
inline constexpr const char* kJobLinprobe = "linprobe";

struct OptimConfig {
  std::string optimizer = "adamw";  // adamw, or lars (linear probing)
  int64_t batch_size = 64;          // per rank, per micro-step
  int64_t accum_iter = 1;
  double epochs = 5;
  double warmup_epochs = 1;
  double blr = 1.5e-4;  // base lr: lr = blr * global_batch / 256
  double lr = 0;        // > 0: the absolute lr, blr ignored
  double min_lr = 0;
  double weight_decay = 0.05;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double clip_grad = 0;   // max global grad norm; 0 = off
  int64_t max_steps = 0;  // stop after this many optimizer steps (0 = run all epochs); the
                          // schedule still spans `epochs`
  double max_epochs = 0;  // stop after this many epochs (0 = off), as max_steps does
  // The run's length in optimizer steps instead of `epochs` (0: epochs decide): the schedule
  // spans exactly these steps (warmup_epochs still counts epochs of data).
  int64_t steps = 0;
};

// Pretraining's held-out measure (pretrain jobs only): the masked-patch loss of the first
// `images` images of `split`, resized without crop or flip, with mask noise keyed by
// (mask_seed, index) - the `maestro eval recon` figure - after every epoch and at the end of
// the run, as the evaluation record {heldout_masked_loss}. It reads the model only.
struct PretrainEvalConfig {
  int64_t images = 0;  // 0: no held-out measure
  std::string split = "test";
  int64_t mask_seed = 0;
};

struct RunConfig {
  uint64_t seed = 0;
  int64_t threads = 0;  // intra-op CPU threads; 0 = LibTorch's default
  std::string device = "cpu";
  std::string precision = "fp32";  // fp32, or bf16 (autocast; CUDA only)
  std::string output_dir = "runs/pretrain";
};

struct CheckpointConfig {
  std::string dir;  // URI or path; empty = <output_dir>/checkpoints
  int64_t interval_steps = 0;
  double interval_seconds = 0;
  int64_t keep_last = 3;
};

struct LogConfig {
  int64_t interval_steps = 20;
};

// Data-parallel training (the ranks come from the launcher: mpirun's environment).
struct DistConfig {
  double bucket_mb = 25;   // gradients are all-reduced in flat buckets of about this size
  double timeout_s = 300;  // a collective taking longer ends the rank (exit 4)
};

// Fine-tuning, partial fine-tuning and linear probing: the classifier on top of the encoder,
// its recipe and its evaluation (finetune / linprobe jobs only).
struct ClassifyConfig {
  // Where the encoder comes from: a maestro pretraining checkpoint folder, a checkpoint location
  // (its latest valid checkpoint), a Hugging Face ViTMAE folder, a .safetensors file with
  // official MAE names, or "none" (a randomly initialized encoder: training from scratch).
  std::string pretrained;
  int64_t num_classes = 0;   // the head size; required
  bool global_pool = true;   // mean of patch tokens + fc_norm; false: the cls token + norm
  int64_t tune_blocks = -1;  // -1: everything; k >= 0: the last k blocks + norm + head
  double layer_decay = 0.75;
  double drop_path = 0.1;
  double mixup = 0.8;  // Beta alphas; 0 = off
  double cutmix = 1.0;
  double mixup_prob = 1.0;
  double mixup_switch_prob = 0.5;
  double label_smoothing = 0.1;
  int64_t randaug_ops = 2;  // RandAugment(n, m, mstd); 0 = off
  double randaug_magnitude = 9;
  double randaug_magnitude_std = 0.5;
  double reprob = 0.25;  // random erasing probability
  std::string eval_split = "test";
  double eval_crop_pct = 0.875;  // resize to size / crop_pct, center crop
  int64_t eval_batch_size = 256;
  int64_t eval_max_samples = 0;  // evaluate on the first N held-out samples only (0 = all)
};

struct TrainConfig {
  std::string job = kJobPretrain;  // pretrain, finetune or linprobe
  std::string model_preset = "mae_vit_tiny_fmnist";
  model::MaeOptions model;  // the preset with the config's overrides applied
  DataConfig data;
  OptimConfig optim;
  RunConfig run;
  CheckpointConfig checkpoint;
  LogConfig log;
  DistConfig dist;
  ClassifyConfig classify;  // finetune and linprobe only
  PretrainEvalConfig eval;  // pretrain only

  bool is_classification() const { return job != kJobPretrain; }

  // world_size x batch_size x accum_iter.
  int64_t global_batch(int64_t world_size) const {
    return world_size * optim.batch_size * optim.accum_iter;
  }
  double peak_lr(int64_t world_size) const {
    return optim.lr > 0 ? optim.lr
                        : optim.blr * static_cast<double>(global_batch(world_size)) / 256.0;
  }
  std::string checkpoint_location() const {
    return checkpoint.dir.empty() ? run.output_dir + "/checkpoints" : checkpoint.dir;
  }

  // Every field, for printing and saving.
  Json ToJson() const;
  // sha256 of the fields that change the trained result (model, data augmentation, optim,
  // seed, precision); paths, worker and thread counts, logging and checkpoint cadence,
  // optim.max_steps and optim.max_epochs (where a run stops, not what it computes) and the
  // held-out measure are left out, so changing them does not make a checkpoint foreign.
  // optim.steps enters only when set (configs without it hash as they always did).
  std::string ResultHash() const;
};

// ParseTrainConfig's limits: far beyond any real run, so a value past them is a mistake (or an
// attack) reported as a config error, never a crash or a retry.
inline constexpr int64_t kMaxThreads = 1024;
inline constexpr int64_t kMaxDataWorkers = 64;
inline constexpr int64_t kMaxBatchSize = 1 << 20;
inline constexpr int64_t kMaxAccumIter = 1 << 16;
inline constexpr double kMaxEpochs = 100000;
inline constexpr int64_t kMaxSteps = int64_t{1} << 40;
inline constexpr int64_t kMaxEvalImages = 1 << 20;
inline constexpr double kMaxActivationBytes = 1024.0 * (1 << 30);  // 1 TiB per rank

// An estimate of one rank's activation memory for a training step (fp32).
double ActivationBytesPerRank(const TrainConfig& c);

// The defaults of a job kind (pretrain, finetune, linprobe); INVALID_ARGUMENT for another.
Result<TrainConfig> DefaultTrainConfig(const std::string& job);
// Reads a config tree (from LoadConfigFile + overrides) over the job's defaults. A `job` key,
// when present, must name the same job. INVALID_ARGUMENT names the key.
Result<TrainConfig> ParseTrainConfig(const Json& tree, const std::string& job = kJobPretrain);
// Loads `path` (empty: defaults only), applies `overrides` ("a.b=c"), parses.
Result<TrainConfig> LoadTrainConfig(const std::string& path,
                                    const std::vector<std::string>& overrides,
                                    const std::string& job = kJobPretrain);

}  // namespace maestro::engine
