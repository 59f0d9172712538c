// Pretraining's held-out measure, one definition for `maestro eval recon` and the trainer
// (config eval.*): the masked-patch loss of an MAE on the first images of a split, resized to
// the model's input without crop or flip, with mask noise keyed by (seed, image index), so the
// same checkpoint always gets the same figure. Reads the model only (no gradients, no random
// draws). Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "maestro/dataloader/dataset.h"
#include "maestro/model/mae.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

struct HeldOutImages {
  torch::Tensor images;  // (N, C, S, S) float, normalized with the training mean and std
  torch::Tensor noise;   // (N, L) mask noise
};

// The first `count` images of `dataset` (fewer when it is smaller), channels replicated when
// the model wants more. DATA_LOSS naming the sample that cannot be read.
Result<HeldOutImages> LoadHeldOutImages(const dataloader::Dataset& dataset,
                                        const model::MaeOptions& options,
                                        const std::vector<double>& mean,
                                        const std::vector<double>& std, int64_t count,
                                        uint64_t mask_seed);

struct MaskedLossFigures {
  double model_loss = 0;
  // The loss of predicting every masked patch as the mean of the image's visible patches (in
  // the loss's target space); computed only when asked.
  double baseline_loss = 0;
};

// Mean over the images of the per-image masked-patch loss, in chunks of 500, on the model's
// device, in fp32.
MaskedLossFigures MeasureMaskedLoss(model::MaskedAutoencoderViT& model, const HeldOutImages& set,
                                    bool with_baseline);

}  // namespace maestro::engine
