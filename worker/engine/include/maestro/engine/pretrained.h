// Loading a pretrained MAE for use outside training (reconstructions, evaluation, and the
// fine-tuning issue): from a maestro checkpoint folder, or from a Hugging Face
// ViTMAEForPreTraining folder (config.json + model.safetensors), whose names are imported.
#pragma once

#include <string>
#include <vector>

#include "maestro/engine/config.h"
#include "maestro/model/mae.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

struct PretrainedMae {
  model::MaskedAutoencoderViT model{nullptr};
  std::string source;        // "maestro checkpoint step-...", "Hugging Face ViTMAE"
  std::vector<double> mean;  // pixel normalization the model was trained with, per channel
  std::vector<double> std;
  DataConfig data;   // the training data (maestro checkpoints); defaults otherwise
  int64_t step = 0;  // optimizer step of a maestro checkpoint
};

// Loads `path`: a maestro checkpoint folder (its manifest checksums are verified first) or a
// Hugging Face folder. `mask_ratio` > 0 replaces the model's mask ratio. NOT_FOUND /
// DATA_LOSS / INVALID_ARGUMENT with the reason.
Result<PretrainedMae> LoadPretrainedMae(const std::string& path, double mask_ratio = 0);

}  // namespace maestro::engine
