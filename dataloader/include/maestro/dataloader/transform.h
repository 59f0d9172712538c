// The per-sample augmentation (RandomResizedCrop + horizontal flip, plus RandAugment for
// fine-tuning), the evaluation transform (resize + center crop) and the per-sample MAE mask
// noise, all counter-based functions of (seed, epoch, sample index): the same sample in the
// same epoch gets the same pixels and mask on any rank, thread or resume. Thread-safe.
#pragma once

#include <torch/torch.h>

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/rand_augment.h"

namespace maestro::dataloader {

struct AugmentOptions {
  int64_t output_size = 224;
  double scale_min = 0.2;  // RandomResizedCrop area fraction
  double scale_max = 1.0;
  double ratio_min = 3.0 / 4.0;
  double ratio_max = 4.0 / 3.0;
  bool random_crop = true;  // false: resize the whole image (evaluation)
  bool horizontal_flip = true;
  RandAugmentOptions randaug;  // after crop and flip; num_ops 0 = off
};

// torchvision's RandomResizedCrop.get_params: ten tries at a random area and log-uniform
// aspect ratio, then the center crop clamped to the ratio range.
CropBox SampleCrop(int64_t height, int64_t width, const AugmentOptions& options, uint64_t key);

// Keys of the per-sample random streams.
uint64_t AugmentKey(uint64_t seed, int64_t epoch, int64_t index);
uint64_t MaskNoiseKey(uint64_t seed, int64_t epoch, int64_t index);

// (C, S, S) uint8 (a view of channels-last memory): crop, Pillow's bicubic resize of the crop
// (resize.h; antialiased when shrinking, so equal to torchvision's RandomResizedCrop on a PIL
// image), optional flip (folded into the resize), optional RandAugment.
torch::Tensor AugmentSample(const RawSample& sample, const AugmentOptions& options, uint64_t seed,
                            int64_t epoch);
// The same augmentation of a JPEG-encoded sample: the crop is drawn from the header's size with
// AugmentSample's key, only its region is decoded (at 1/2, 1/4 or 1/8 DCT scale when the crop
// keeps at least output_size pixels; the box is then a fractional one inside the decoded
// region, resampled as Pillow resamples a box), then resized, flipped and RandAugmented the
// same way. At scale 1 the result equals
// AugmentSample of the fully decoded image. Throws maestro::Error (DATA_LOSS) for a corrupt
// JPEG. A PNG sample is decoded whole and augmented as AugmentSample. Needs the build with
// libjpeg (MAESTRO_HAVE_JPEG; libpng for PNG).
torch::Tensor AugmentEncoded(const EncodedSample& sample, const AugmentOptions& options,
                             uint64_t seed, int64_t epoch);
// The official evaluation transform, (C, S, S) uint8: resize the short side to
// int(S / crop_pct) (Pillow's bicubic; the long side keeps the aspect ratio), then the
// center S x S crop. crop_pct 0.875 is the paper's 224/256.
torch::Tensor EvalTransform(const RawSample& sample, int64_t size, double crop_pct);
// (num_patches,) float32 uniform noise in [0, 1) for the MAE mask of this sample.
torch::Tensor MaskNoise(int64_t num_patches, uint64_t seed, int64_t epoch, int64_t index);

}  // namespace maestro::dataloader
