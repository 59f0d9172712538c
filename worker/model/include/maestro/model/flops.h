// Model FLOPs of one MAE training step, counted from the matrix products (2 * M * N * K each;
// element-wise work is left out, as the paper's figures do). Turns a measured images/s into a
// distance from the hardware's matrix rate (model FLOP utilization).
#pragma once

#include "maestro/shared/model_options.h"

namespace maestro::model {

struct MaeFlops {
  double encoder_forward = 0;  // patch embedding + blocks on the visible tokens + cls
  double decoder_forward = 0;  // decoder embedding + blocks on all tokens + prediction head
  double forward() const { return encoder_forward + decoder_forward; }
  // Forward + backward, the backward counted as twice the forward.
  double training_step() const { return 3.0 * forward(); }
};

// FLOPs per image for `options` (random masking's visible-token count).
MaeFlops MaeFlopsPerImage(const MaeOptions& options);

}  // namespace maestro::model
