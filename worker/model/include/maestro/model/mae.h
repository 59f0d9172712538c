// The Masked Autoencoder (He et al. 2021), read like the official models_mae.py: each method
// is one step of the paper, and parameters carry the official state_dict names
// (`blocks.0.attn.qkv.weight`, `decoder_pred.bias`, ...), so weights move to and from PyTorch
// unchanged. Not thread-safe (a torch::nn::Module); one instance per training process.
#pragma once

#include <torch/torch.h>

#include "maestro/shared/model_options.h"

namespace maestro::model {

// Multi-head self-attention with a fused qkv projection (with bias), through
// at::scaled_dot_product_attention.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t num_heads);
  torch::Tensor forward(const torch::Tensor& x);  // (N, T, D) -> (N, T, D)

 private:
  int64_t num_heads_;
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(Attention);

// Linear -> exact GELU -> Linear.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden_dim);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::GELU act_{nullptr};
};
TORCH_MODULE(Mlp);

// A pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); with drop_path > 0
// each residual branch goes through DropPath in training (fine-tuning; pretraining uses none).
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, double layer_norm_eps,
            double drop_path = 0.0);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  double drop_path_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  Attention attn_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(Block);

// Image to patch tokens: a p x p convolution with stride p.
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_chans, int64_t embed_dim, int64_t patch_size);
  torch::Tensor forward(const torch::Tensor& imgs);  // (N, C, H, W) -> (N, L, D)
  torch::nn::Conv2d& proj() { return proj_; }

 private:
  torch::nn::Conv2d proj_{nullptr};
};
TORCH_MODULE(PatchEmbed);

// Which patches are visible, as random_masking returns them.
struct Masking {
  torch::Tensor ids_keep;     // (N, len_keep) int64: visible patch indices, in shuffled order
  torch::Tensor mask;         // (N, L) float32: 0 visible, 1 masked, in image order
  torch::Tensor ids_restore;  // (N, L) int64: inverse of the shuffle
};

struct EncoderOutput {
  torch::Tensor latent;       // (N, 1 + len_keep, D), or (N, 1 + L, D) with encoder_mask_token
  torch::Tensor mask;         // (N, L)
  torch::Tensor ids_restore;  // (N, L)
};

struct MaeOutput {
  torch::Tensor loss;         // scalar
  torch::Tensor pred;         // (N, L, p*p*C)
  torch::Tensor mask;         // (N, L)
  torch::Tensor ids_restore;  // (N, L)
};

class MaskedAutoencoderViTImpl : public torch::nn::Module {
 public:
  // Builds the model with the official initialization. Throws maestro::Error
  // (INVALID_ARGUMENT) for options that fail MaeOptions::Validate().
  explicit MaskedAutoencoderViTImpl(const MaeOptions& options);

  const MaeOptions& options() const { return options_; }

  // (N, C, H, W) -> (N, L, p*p*C), pixels of a patch in (row, col, channel) order.
  torch::Tensor patchify(const torch::Tensor& imgs) const;
  // (N, L, p*p*C) -> (N, C, H, W); the inverse of patchify.
  torch::Tensor unpatchify(const torch::Tensor& x) const;

  // Per-patch uniform noise in [0, 1) for one batch: (N, L) float32 on `device`.
  torch::Tensor sample_noise(int64_t batch_size, torch::Device device) const;

  // Chooses the visible patches from `noise` (N, L) in [0, 1) by the configured sampling:
  // the patches with the smallest sort keys are kept (masking.h).
  Masking random_masking(const torch::Tensor& noise) const;

  // Encoder on the visible tokens plus the cls token.
  EncoderOutput forward_encoder(const torch::Tensor& imgs, const torch::Tensor& noise);
  // Decoder: embed, append mask tokens, unshuffle, add pos-embed, blocks, predict pixels.
  torch::Tensor forward_decoder(const torch::Tensor& latent, const torch::Tensor& ids_restore);
  // The reconstruction target (N, L, p*p*C): the patchified image, normalized per patch (mean,
  // unbiased variance, eps 1e-6) when norm_pix_loss.
  torch::Tensor loss_target(const torch::Tensor& imgs) const;
  // Mean squared error against loss_target over masked patches only.
  torch::Tensor forward_loss(const torch::Tensor& imgs, const torch::Tensor& pred,
                             const torch::Tensor& mask) const;
  // All of the above; `noise` may be undefined, then sample_noise draws it.
  MaeOutput forward(const torch::Tensor& imgs, torch::Tensor noise = {});

  // Parameters with requires_grad (the fixed position embeddings are not).
  int64_t num_trainable_parameters() const;

 private:
  void initialize_weights();

  MaeOptions options_;
  PatchEmbed patch_embed_{nullptr};
  torch::Tensor cls_token_, pos_embed_, encoder_mask_token_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear decoder_embed_{nullptr};
  torch::Tensor mask_token_, decoder_pos_embed_;
  torch::nn::ModuleList decoder_blocks_{nullptr};
  torch::nn::LayerNorm decoder_norm_{nullptr};
  torch::nn::Linear decoder_pred_{nullptr};
};
TORCH_MODULE(MaskedAutoencoderViT);

}  // namespace maestro::model
