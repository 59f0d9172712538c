#include "maestro/model/vit.h"

#include <cmath>

#include "maestro/model/pos_embed.h"

namespace maestro::model {

namespace nn = torch::nn;

VitOptions VitOptions::FromMae(const MaeOptions& mae, int64_t num_classes) {
  VitOptions o;
  o.img_size = mae.img_size;
  o.patch_size = mae.patch_size;
  o.in_chans = mae.in_chans;
  o.embed_dim = mae.embed_dim;
  o.depth = mae.depth;
  o.num_heads = mae.num_heads;
  o.mlp_ratio = mae.mlp_ratio;
  o.layer_norm_eps = mae.layer_norm_eps;
  o.num_classes = num_classes;
  return o;
}

VisionTransformerImpl::VisionTransformerImpl(const VitOptions& options) : options_(options) {
  const auto& o = options_;
  if (o.img_size % o.patch_size != 0 || o.embed_dim % o.num_heads != 0 || o.num_classes <= 0 ||
      o.depth <= 0 || o.embed_dim % 4 != 0) {
    throw Error(InvalidArgumentError(
        "ViT: img_size must be a multiple of patch_size, embed_dim a multiple of "
        "num_heads and of 4, depth and num_classes positive"));
  }
  const int64_t num_patches = o.grid_size() * o.grid_size();
  patch_embed_ = register_module("patch_embed", PatchEmbed(o.in_chans, o.embed_dim, o.patch_size));
  cls_token_ = register_parameter("cls_token", torch::zeros({1, 1, o.embed_dim}));
  pos_embed_ = register_parameter("pos_embed", torch::zeros({1, num_patches + 1, o.embed_dim}));
  blocks_ = register_module("blocks", nn::ModuleList());
  for (int64_t i = 0; i < o.depth; ++i) {
    // Stochastic depth grows linearly from 0 at the first block to drop_path_rate at the last.
    const double drop =
        o.depth > 1 ? o.drop_path_rate * static_cast<double>(i) / static_cast<double>(o.depth - 1)
                    : 0.0;
    blocks_->push_back(Block(o.embed_dim, o.num_heads, o.mlp_ratio, o.layer_norm_eps, drop));
  }
  norm_ = register_module(o.global_pool ? "fc_norm" : "norm",
                          nn::LayerNorm(nn::LayerNormOptions({o.embed_dim}).eps(o.layer_norm_eps)));
  if (o.head_batchnorm) {
    head_bn_ = register_module(
        "head_bn", nn::BatchNorm1d(nn::BatchNormOptions(o.embed_dim).affine(false).eps(1e-6)));
  }
  head_ = register_module("head", nn::Linear(o.embed_dim, o.num_classes));

  torch::NoGradGuard no_grad;
  pos_embed_.copy_(get_2d_sincos_pos_embed(o.embed_dim, o.grid_size(), true).unsqueeze(0));
  nn::init::normal_(cls_token_, 0.0, 0.02);
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<nn::Linear>()) {
      nn::init::xavier_uniform_(linear->weight);
      nn::init::zeros_(linear->bias);
    }
  }
  nn::init::normal_(head_->weight, 0.0, o.head_init_std);
  nn::init::zeros_(head_->bias);
}

torch::Tensor VisionTransformerImpl::forward_features(const torch::Tensor& imgs) {
  auto x = patch_embed_->forward(imgs) + pos_embed_.slice(1, 1);                    // (N, L, D)
  auto cls = (cls_token_ + pos_embed_.slice(1, 0, 1)).expand({x.size(0), -1, -1});  // (N, 1, D)
  x = torch::cat({cls, x}, 1);
  for (const auto& block : *blocks_) x = block->as<Block>()->forward(x);
  if (options_.global_pool) return norm_->forward(x.slice(1, 1).mean(1));  // fc_norm(mean)
  return norm_->forward(x).select(1, 0);                                   // norm, cls token
}

torch::Tensor VisionTransformerImpl::forward_head(const torch::Tensor& features) {
  auto x = head_bn_ ? head_bn_->forward(features) : features;
  return at::linear(x, head_->weight, head_->bias);
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& imgs) {
  return forward_head(forward_features(imgs));
}

torch::Tensor InterpolatePosEmbed(const torch::Tensor& pos_embed, int64_t new_grid,
                                  int64_t extra_tokens) {
  TORCH_CHECK(pos_embed.dim() == 3 && pos_embed.size(0) == 1, "pos_embed must be (1, T, D), got ",
              pos_embed.sizes());
  const int64_t dim = pos_embed.size(2);
  const auto old_grid = static_cast<int64_t>(
      std::lround(std::sqrt(static_cast<double>(pos_embed.size(1) - extra_tokens))));
  TORCH_CHECK(old_grid * old_grid + extra_tokens == pos_embed.size(1),
              "pos_embed rows are not extra + a square grid");
  if (old_grid == new_grid) return pos_embed;
  auto extra = pos_embed.slice(1, 0, extra_tokens);
  auto grid =
      pos_embed.slice(1, extra_tokens).reshape({1, old_grid, old_grid, dim}).permute({0, 3, 1, 2});
  grid =
      torch::nn::functional::interpolate(grid, torch::nn::functional::InterpolateFuncOptions()
                                                   .size(std::vector<int64_t>{new_grid, new_grid})
                                                   .mode(torch::kBicubic)
                                                   .align_corners(false));
  grid = grid.permute({0, 2, 3, 1}).flatten(1, 2);
  return torch::cat({extra, grid}, 1);
}

}  // namespace maestro::model
