// What the training loop needs of an optimizer: a step at a given learning rate (each group
// scales it), clearing gradients, and its state as named tensors for checkpoints. AdamW
// (pretraining, fine-tuning) and LARS (linear probing) implement it. Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "maestro/shared/status.h"

namespace maestro::engine {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with scheduled learning rate `lr`; parameters without a gradient are skipped.
  virtual void Step(double lr) = 0;
  virtual void ZeroGrad() = 0;
  // The state, keyed "<param>.<slot>".
  virtual std::map<std::string, torch::Tensor> StateDict() const = 0;
  // Restores StateDict() output; INVALID_ARGUMENT names a missing or misshapen entry and
  // nothing is changed then.
  virtual Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) = 0;
};

}  // namespace maestro::engine
