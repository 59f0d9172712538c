// Stochastic depth ("drop path", Huang et al. 2016) as timm implements it: in training, each
// sample's residual branch is zeroed with probability `drop_prob` and the kept ones are scaled
// by 1 / (1 - drop_prob), so the expectation is unchanged. Identity in eval or at 0.
#pragma once

#include <torch/torch.h>

namespace maestro::model {

inline torch::Tensor DropPath(const torch::Tensor& x, double drop_prob, bool training) {
  if (drop_prob <= 0.0 || !training) return x;
  const double keep_prob = 1.0 - drop_prob;
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);  // one draw per sample
  auto keep = torch::empty(shape, x.options()).bernoulli_(keep_prob);
  return x * keep.div_(keep_prob);
}

}  // namespace maestro::model
