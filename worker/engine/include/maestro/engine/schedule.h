// The official MAE learning-rate schedule (util/lr_sched.py): linear warmup from 0 over
// `warmup_epochs`, then a half-cosine from the peak to `min_lr` at `epochs`. `epoch` is
// fractional (epoch + step_in_epoch / steps_per_epoch), evaluated at accumulation boundaries.
#pragma once

#include <cmath>
#include <numbers>

namespace maestro::engine {

inline double ScheduledLearningRate(double peak_lr, double min_lr, double warmup_epochs,
                                    double epochs, double epoch) {
  if (epoch < warmup_epochs) return peak_lr * epoch / warmup_epochs;
  return min_lr + (peak_lr - min_lr) * 0.5 *
                      (1.0 + std::cos(std::numbers::pi * (epoch - warmup_epochs) /
                                      (epochs - warmup_epochs)));
}

}  // namespace maestro::engine
