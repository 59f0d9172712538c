// Loading a pretrained MAE for use outside training (reconstructions, evaluation, and the
// fine-tuning issue): from a maestro checkpoint folder, or from a Hugging Face
// ViTMAEForPreTraining folder (config.json + model.safetensors), whose names are imported.
#pragma once

#include <string>
#include <vector>

#include "maestro/checkpoint/safetensors.h"
#include "maestro/shared/train_config.h"
#include "maestro/model/mae.h"
#include "maestro/model/vit.h"
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

// Copies the encoder of an MAE state dict (official names) into a ViT classifier: decoder
// tensors and mask tokens are dropped, and `norm.*` too when the ViT pools globally (it has
// fc_norm instead); pos_embed is interpolated when the patch grid differs. The head (and
// fc_norm) keep their initialization. INVALID_ARGUMENT lists every tensor that does not fit:
// missing encoder tensors, unexpected ones, shape mismatches (another architecture).
Status LoadMaeEncoderIntoVit(model::VisionTransformer& vit, const checkpoint::TensorMap& mae_state);

}  // namespace maestro::engine
