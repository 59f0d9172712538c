#include "maestro/engine/adamw.h"

#include <cmath>
#include <cstdio>

namespace maestro::engine {

AdamW::AdamW(const std::vector<ParamGroup>& groups, AdamWOptions options) : options_(options) {
  for (const auto& group : groups) {
    Group g{group.name, group.weight_decay, group.lr_scale, {}};
    for (const auto& [name, param] : group.params) {
      g.slots.push_back({name, param, torch::zeros_like(param, torch::MemoryFormat::Preserve),
                         torch::zeros_like(param, torch::MemoryFormat::Preserve),
                         torch::zeros({}, param.options().dtype(torch::kFloat32))});
    }
    groups_.push_back(std::move(g));
  }
}

void AdamW::ZeroGrad() {
  for (auto& group : groups_) {
    for (auto& slot : group.slots) slot.param.mutable_grad() = torch::Tensor();
  }
}

void AdamW::StepGroup(Group& group, double base_lr) {
  const double lr = base_lr * group.lr_scale, weight_decay = group.weight_decay;
  torch::NoGradGuard no_grad;
  std::vector<Slot*> active;
  for (auto& slot : group.slots) {
    if (slot.param.grad().defined()) active.push_back(&slot);
  }
  if (active.empty()) return;
  if (options_.fused) {
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (Slot* s : active) {
      s->step.add_(1);  // the fused kernel reads the incremented count; it does not increment
      params.push_back(s->param);
      grads.push_back(s->param.grad());
      exp_avgs.push_back(s->exp_avg);
      exp_avg_sqs.push_back(s->exp_avg_sq);
      steps.push_back(s->step);
    }
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr,
                      options_.beta1, options_.beta2, weight_decay, options_.eps,
                      /*amsgrad=*/false, /*maximize=*/false);
    return;
  }
  // torch.optim.AdamW, _single_tensor_adamw, without amsgrad / maximize / capturable.
  for (Slot* s : active) {
    s->step.add_(1);
    const double step = s->step.item<double>();
    const auto& grad = s->param.grad();
    s->param.mul_(1.0 - lr * weight_decay);
    s->exp_avg.lerp_(grad, 1.0 - options_.beta1);
    s->exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, step);
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, step);
    const double step_size = lr / bias_correction1;
    const double bias_correction2_sqrt = std::sqrt(bias_correction2);
    auto denom = (s->exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
    s->param.addcdiv_(s->exp_avg, denom, -step_size);
  }
}

void AdamW::Step(double lr) {
  for (auto& group : groups_) StepGroup(group, lr);
}

std::map<std::string, torch::Tensor> AdamW::StateDict() const {
  std::map<std::string, torch::Tensor> state;
  for (const auto& group : groups_) {
    for (const auto& slot : group.slots) {
      state[slot.name + ".exp_avg"] = slot.exp_avg;
      state[slot.name + ".exp_avg_sq"] = slot.exp_avg_sq;
      state[slot.name + ".step"] = slot.step;
    }
  }
  return state;
}

Status AdamW::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  // Check everything before changing anything.
  for (const auto& group : groups_) {
    for (const auto& slot : group.slots) {
      for (const auto& [suffix, target] :
           {std::pair{".exp_avg", &slot.exp_avg}, std::pair{".exp_avg_sq", &slot.exp_avg_sq},
            std::pair{".step", &slot.step}}) {
        auto it = state.find(slot.name + suffix);
        if (it == state.end())
          return InvalidArgumentError("optimizer state lacks '" + slot.name + suffix + "'");
        if (it->second.sizes() != target->sizes()) {
          return InvalidArgumentError("optimizer state '" + slot.name + suffix +
                                      "' has the wrong shape");
        }
      }
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (auto& slot : group.slots) {
      slot.exp_avg.copy_(state.at(slot.name + ".exp_avg"));
      slot.exp_avg_sq.copy_(state.at(slot.name + ".exp_avg_sq"));
      slot.step.copy_(state.at(slot.name + ".step"));
    }
  }
  return OkStatus();
}

}  // namespace maestro::engine
