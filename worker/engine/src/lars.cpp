#include "maestro/engine/lars.h"

namespace maestro::engine {

Lars::Lars(const std::vector<ParamGroup>& groups, LarsOptions options) : options_(options) {
  for (const auto& group : groups) {
    Group g{group.weight_decay, group.lr_scale, {}};
    for (const auto& [name, param] : group.params)
      g.slots.push_back({name, param, torch::zeros_like(param)});
    groups_.push_back(std::move(g));
  }
}

void Lars::Step(double lr) {
  torch::NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (auto& slot : group.slots) {
      torch::Tensor update = slot.param.grad();
      if (!update.defined()) continue;
      if (slot.param.dim() > 1) {
        update = update.add(slot.param, group.weight_decay);
        auto param_norm = slot.param.norm();
        auto update_norm = update.norm();
        auto one = torch::ones_like(param_norm);
        auto trust =
            torch::where(param_norm > 0.0,
                         torch::where(update_norm > 0.0,
                                      options_.trust_coefficient * param_norm / update_norm, one),
                         one);
        update = update.mul(trust);
      }
      slot.momentum_buffer.mul_(options_.momentum).add_(update);
      slot.param.add_(slot.momentum_buffer, -lr * group.lr_scale);
    }
  }
}

void Lars::ZeroGrad() {
  for (auto& group : groups_) {
    for (auto& slot : group.slots) slot.param.mutable_grad() = torch::Tensor();
  }
}

std::map<std::string, torch::Tensor> Lars::StateDict() const {
  std::map<std::string, torch::Tensor> state;
  for (const auto& group : groups_) {
    for (const auto& slot : group.slots)
      state[slot.name + ".momentum_buffer"] = slot.momentum_buffer;
  }
  return state;
}

Status Lars::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  for (const auto& group : groups_) {
    for (const auto& slot : group.slots) {
      auto it = state.find(slot.name + ".momentum_buffer");
      if (it == state.end() || it->second.sizes() != slot.momentum_buffer.sizes()) {
        return InvalidArgumentError("optimizer state lacks a fitting '" + slot.name +
                                    ".momentum_buffer'");
      }
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (auto& slot : group.slots)
      slot.momentum_buffer.copy_(state.at(slot.name + ".momentum_buffer"));
  }
  return OkStatus();
}

}  // namespace maestro::engine
