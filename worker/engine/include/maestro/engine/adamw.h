// AdamW over parameter groups (param_groups.h: pretraining's weight-decay split, fine-tuning's
// layer-wise lr decay), the learning rate set from outside every step and scaled per group.
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

#include "maestro/engine/optimizer.h"
#include "maestro/engine/param_groups.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  // One at::_fused_adamw_ call per group (CPU and CUDA kernels exist); false: torch.optim.AdamW's
  // single-tensor update, op by op.
  bool fused = true;
};

class AdamW : public Optimizer {
 public:
  AdamW(const std::vector<ParamGroup>& groups, AdamWOptions options);

  // One update: group g uses lr * g.lr_scale and g.weight_decay; parameters without a
  // gradient are skipped.
  void Step(double lr) override;
  void ZeroGrad() override;

  // "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.step" (the step as a float32 scalar).
  std::map<std::string, torch::Tensor> StateDict() const override;
  // Restores StateDict() output. INVALID_ARGUMENT names a missing or misshapen entry.
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, exp_avg, exp_avg_sq, step;  // step: float32 scalar on the param's device
  };
  struct Group {
    std::string name;
    double weight_decay, lr_scale;
    std::vector<Slot> slots;
  };
  void StepGroup(Group& group, double lr);

  AdamWOptions options_;
  std::vector<Group> groups_;
};

}  // namespace maestro::engine
