// RandAugment (Cubuk et al. 2019) as timm's `rand-m9-mstd0.5-inc1` policy implements it, the
// fine-tuning augmentation of the MAE paper (Table 9): each operation reproduces the Pillow
// call timm makes (ImageOps / ImageEnhance / Image.transform with bicubic resampling), on
// uint8 HWC images of 1 or 3 channels. The draws come from a counter-based stream, so a
// sample's augmentation is a function of its key. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/dataloader/dataset.h"

namespace maestro::dataloader {

// timm's _RAND_INCREASING_TRANSFORMS, in its order.
enum class AugmentOp {
  kAutoContrast,
  kEqualize,
  kInvert,
  kRotate,
  kPosterizeIncreasing,
  kSolarizeIncreasing,
  kSolarizeAdd,
  kColorIncreasing,
  kContrastIncreasing,
  kBrightnessIncreasing,
  kSharpnessIncreasing,
  kShearX,
  kShearY,
  kTranslateXRel,
  kTranslateYRel,
};
inline constexpr int kNumAugmentOps = 15;

// timm's name of `op` ("AutoContrast", ...).
const char* AugmentOpName(AugmentOp op);

struct RandAugmentOptions {
  int64_t num_ops = 0;         // operations drawn per image, with replacement (0 = off; timm: 2)
  double magnitude = 9;        // on timm's 0..10 level scale
  double magnitude_std = 0.5;  // per-application Gaussian noise on the magnitude
  double prob = 0.5;           // each drawn operation is applied with this probability
  std::vector<uint8_t> fill;   // per channel, for pixels the geometric ops uncover
};

// Applies one operation at `magnitude` (clipped to [0, 10]). `negate` flips the direction of
// the signed ones (rotate, shear, translate, and the enhance factors 1 +- level), as timm's
// _randomly_negate does. `fill` has one value per channel.
void ApplyAugmentOp(RawSample& image, AugmentOp op, double magnitude, bool negate,
                    const std::vector<uint8_t>& fill);

// The whole policy: num_ops operations drawn uniformly with replacement, each applied with
// probability `prob` at magnitude N(magnitude, magnitude_std) clipped to [0, 10], with a random
// direction; every draw from the stream of `key`.
void RandAugment(RawSample& image, const RandAugmentOptions& options, uint64_t key);

}  // namespace maestro::dataloader
