// The ViT classifier that fine-tuning and linear probing train on top of an MAE encoder, as
// the official models_vit.py builds it: the MAE encoder's patch embedding, cls token,
// position embedding (trainable here) and blocks, then either the global average of the patch
// tokens through `fc_norm` (global_pool, the paper's fine-tuning default) or the cls token
// through `norm`, then `head`. Parameter names equal timm's VisionTransformer, so the encoder
// part of an MAE state dict loads by name. Not thread-safe (a torch::nn::Module).
#pragma once

#include <torch/torch.h>

#include "maestro/model/mae.h"

namespace maestro::model {

struct VitOptions {
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  double layer_norm_eps = 1e-6;
  int64_t num_classes = 1000;
  bool global_pool = true;      // mean of patch tokens + fc_norm; false: the cls token + norm
  double drop_path_rate = 0.0;  // linearly increasing over the blocks, from 0
  // Linear probing (main_linprobe.py): BatchNorm1d without affine (eps 1e-6) before the head.
  bool head_batchnorm = false;
  double head_init_std = 2e-5;  // fine-tuning 2e-5; linear probing 0.01

  int64_t grid_size() const { return img_size / patch_size; }
  // The encoder of an MAE with these options.
  static VitOptions FromMae(const MaeOptions& mae, int64_t num_classes);
};

class VisionTransformerImpl : public torch::nn::Module {
 public:
  // The head is initialized as the official code does (normal with head_init_std, bias 0); the
  // rest as the MAE encoder (callers load pretrained weights over it).
  explicit VisionTransformerImpl(const VitOptions& options);

  const VitOptions& options() const { return options_; }
  // (N, C, H, W) -> (N, D): the pooled (or cls) feature before the head.
  torch::Tensor forward_features(const torch::Tensor& imgs);
  // (N, D) features -> (N, num_classes) logits (through head_bn when configured).
  torch::Tensor forward_head(const torch::Tensor& features);
  // (N, C, H, W) -> (N, num_classes) logits.
  torch::Tensor forward(const torch::Tensor& imgs);

 private:
  VitOptions options_;
  PatchEmbed patch_embed_{nullptr};
  torch::Tensor cls_token_, pos_embed_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};       // global_pool: fc_norm instead
  torch::nn::BatchNorm1d head_bn_{nullptr};  // head_batchnorm only
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(VisionTransformer);

// The official util/pos_embed.py interpolate_pos_embed: a (1, extra + g*g, D) table resized to
// (1, extra + new_grid^2, D) by bicubic interpolation of the patch part (align_corners false,
// no antialiasing); the `extra_tokens` leading rows (the cls token) are kept as they are.
torch::Tensor InterpolatePosEmbed(const torch::Tensor& pos_embed, int64_t new_grid,
                                  int64_t extra_tokens = 1);

}  // namespace maestro::model
