// LARS (You et al. 2017) as the official MAE linear probing uses it (util/lars.py): SGD with
// momentum in which the update of every parameter of more than one dimension is first
// weight-decayed and then scaled by trust_coefficient * |p| / |update| (when both norms are
// positive); one-dimensional parameters (biases, normalization) take the plain update.
// Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "maestro/engine/optimizer.h"
#include "maestro/engine/param_groups.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

struct LarsOptions {
  double momentum = 0.9;
  double trust_coefficient = 0.001;
};

class Lars : public Optimizer {
 public:
  Lars(const std::vector<ParamGroup>& groups, LarsOptions options);

  // One update: group g uses lr * g.lr_scale and g.weight_decay.
  void Step(double lr) override;
  void ZeroGrad() override;

  // "<param>.momentum_buffer".
  std::map<std::string, torch::Tensor> StateDict() const override;
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, momentum_buffer;
  };
  struct Group {
    double weight_decay, lr_scale;
    std::vector<Slot> slots;
  };
  LarsOptions options_;
  std::vector<Group> groups_;
};

}  // namespace maestro::engine
