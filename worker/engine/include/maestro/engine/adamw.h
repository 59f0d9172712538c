// AdamW as the official MAE pretraining uses it: two parameter groups (weight decay on the
// rest, none on 1-D parameters and biases; parameters without requires_grad, the fixed
// position embeddings, are left out) and a learning rate set from outside every step.
//
// By default the step is one at::_fused_adamw_ call per group (PyTorch's fused=True), on the
// CPU as on CUDA; `fused = false` follows torch.optim.AdamW's single-tensor update op by op. State
// (exp_avg, exp_avg_sq, step count per parameter) converts to and from named tensors for
// checkpoints. Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::engine {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.05;
  // One at::_fused_adamw_ call per group (CPU and CUDA kernels exist); false: torch.optim.AdamW's
  // single-tensor update, op by op.
  bool fused = true;
};

// Whether the official grouping exempts a parameter from weight decay.
bool SkipsWeightDecay(const std::string& name, const torch::Tensor& param);

class AdamW {
 public:
  // Groups `named_parameters` (those with requires_grad) as the official code does.
  AdamW(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
        AdamWOptions options);

  // One update with learning rate `lr`; parameters without a gradient are skipped.
  void Step(double lr);
  void ZeroGrad();

  // "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.step" (the step as a float32 scalar).
  std::map<std::string, torch::Tensor> StateDict() const;
  // Restores StateDict() output. INVALID_ARGUMENT names a missing or misshapen entry.
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state);

  int64_t num_decay_params() const { return static_cast<int64_t>(decay_.size()); }
  int64_t num_no_decay_params() const { return static_cast<int64_t>(no_decay_.size()); }

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, exp_avg, exp_avg_sq, step;  // step: float32 scalar on the param's device
  };
  void StepGroup(std::vector<Slot>& group, double lr, double weight_decay);

  AdamWOptions options_;
  bool fused_;
  std::vector<Slot> decay_, no_decay_;
};

}  // namespace maestro::engine
