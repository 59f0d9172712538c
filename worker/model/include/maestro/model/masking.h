// Mask sampling strategies (paper, Figure 6), expressed as sort keys: a patch is visible when
// its key is among the smallest `NumVisible` of its image. Random sampling uses the uniform
// noise itself, so it matches the official argsort(noise) exactly; block and grid sampling add
// 2 to the key of every patch their pattern masks and keep the noise as the tie-break order.
// Block patterns are drawn from a generator seeded by the image's own noise row, so the mask
// is a pure function of the noise: reproducible from the noise tensor alone.
#pragma once

#include <torch/torch.h>

#include "maestro/shared/model_options.h"

namespace maestro::model {

// How many of `grid_size`^2 patches stay visible:
//   random: int(L * (1 - mask_ratio))   (as the official code)
//   block:  L - int(L * mask_ratio)     (exactly int(L * mask_ratio) masked)
//   grid:   ceil(g / 2)^2               (even rows x even columns; mask_ratio is not used)
int64_t NumVisible(MaskSampling sampling, int64_t grid_size, double mask_ratio);

// Sort keys (N, L) float32 from noise (N, L) in [0, 1).
torch::Tensor MaskSortKeys(const torch::Tensor& noise, MaskSampling sampling, int64_t grid_size,
                           double mask_ratio);

// BEiT-style block mask for one image: (grid_size, grid_size) bool with exactly
// int(L * mask_ratio) true entries. Blocks of 16/196 of the image or more, aspect ratio in
// [0.3, 1/0.3], added while they fit; any shortfall is filled with single patches.
torch::Tensor BlockMask(int64_t grid_size, double mask_ratio, uint64_t seed);

}  // namespace maestro::model
