// The fine-tuning augmentations that act on normalized float images, as timm implements them
// for the official MAE fine-tuning: Mixup / CutMix in timm's "batch" mode (one lambda per
// batch, each image mixed with its mirror in the batch, labels smoothed into soft targets) and
// RandomErasing in "pixel" mode. Every draw comes from a counter-based stream keyed by the
// caller (step or sample), so a resumed run mixes and erases exactly as before. Thread-safe.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace maestro::dataloader {

struct MixupOptions {
  double mixup_alpha = 0.8;   // Beta(alpha, alpha) lambda for mixup; 0 = off
  double cutmix_alpha = 1.0;  // Beta(alpha, alpha) lambda for cutmix; 0 = off
  double prob = 1.0;          // a batch is mixed with this probability
  double switch_prob = 0.5;   // cutmix instead of mixup when both are on
  double label_smoothing = 0.1;
  int64_t num_classes = 0;
  bool enabled() const { return prob > 0 && (mixup_alpha > 0 || cutmix_alpha > 0); }
};

// One batch's draw (timm's _params_per_batch + rand_bbox).
struct MixupDraw {
  bool mixed = false;  // false: lambda 1, targets only smoothed
  bool cutmix = false;
  double lambda = 1.0;                 // as drawn; cutmix corrects it to the box area
  int64_t center_y = 0, center_x = 0;  // cutmix box center, uniform over the image
};

MixupDraw SampleMixup(const MixupOptions& options, int64_t height, int64_t width, uint64_t key);

// Mixes `images` ((N, C, H, W) float, N even) in place with images.flip(0) as timm does and
// returns the (N, num_classes) soft targets for `labels` ((N,) int64):
// lam * smooth(y) + (1 - lam) * smooth(y.flip(0)), lam corrected to the pasted area for cutmix.
torch::Tensor ApplyMixup(torch::Tensor& images, const torch::Tensor& labels, const MixupDraw& draw,
                         const MixupOptions& options);

// timm's cutmix box for a drawn lambda: rows [y0, y1), columns [x0, x1), clipped to the image.
struct CutBox {
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};
CutBox CutmixBox(int64_t height, int64_t width, double lambda, int64_t center_y, int64_t center_x);

// timm's RandomErasing(probability, mode="pixel", max_count=1) on one normalized (C, H, W)
// float image, in place: with probability `probability`, up to ten tries at a box of area
// U(0.02, 1/3) of the image and log-uniform aspect in [0.3, 1/0.3]; the first that fits is
// filled with standard normal noise. Returns whether it erased.
bool RandomErase(torch::Tensor& image, double probability, uint64_t key);

// Beta(a, a) from the counter stream of `key` (exposed for tests).
double SampleBeta(double a, uint64_t key);

}  // namespace maestro::dataloader
