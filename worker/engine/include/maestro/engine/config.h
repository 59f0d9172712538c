// maestro-train's configuration: one YAML file (plus --set key=value overrides) read into
// typed structs. Unknown keys and wrong types are errors naming the dotted key. The fields
// cover the paper's Table 8 (pretraining setting). Plain data.
#pragma once

#include <string>
#include <vector>

#include "maestro/model/options.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

struct DataConfig {
  std::string source = "fashion-mnist";  // the dataset kind
  std::string path = "/usr/share/datasets/fashion-mnist";
  std::string split = "train";
  double crop_scale_min = 0.2;  // RandomResizedCrop area range
  double crop_scale_max = 1.0;
  bool hflip = true;
  std::vector<double> mean = {0.2860};  // per channel, on [0, 1] pixels
  std::vector<double> std = {0.3530};
  int64_t num_workers = 1;  // decode/augment threads
};

struct OptimConfig {
  int64_t batch_size = 64;  // per rank, per micro-step
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

struct TrainConfig {
  std::string model_preset = "mae_vit_tiny_fmnist";
  model::MaeOptions model;  // the preset with the config's overrides applied
  DataConfig data;
  OptimConfig optim;
  RunConfig run;
  CheckpointConfig checkpoint;
  LogConfig log;

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
  // seed, precision); paths, worker and thread counts, logging and checkpoint cadence and
  // optim.max_steps are left out, so changing them does not make a checkpoint foreign.
  std::string ResultHash() const;
};

// Reads a config tree (from LoadConfigFile + overrides). INVALID_ARGUMENT names the key.
Result<TrainConfig> ParseTrainConfig(const Json& tree);
// Loads `path` (empty: defaults only), applies `overrides` ("a.b=c"), parses.
Result<TrainConfig> LoadTrainConfig(const std::string& path,
                                    const std::vector<std::string>& overrides);

}  // namespace maestro::engine
