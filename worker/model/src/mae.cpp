#include "maestro/model/mae.h"

#include "maestro/model/drop_path.h"
#include "maestro/model/masking.h"
#include "maestro/model/pos_embed.h"

namespace maestro::model {

namespace nn = torch::nn;

namespace {

// at::linear, not Linear::forward: the C++ frontend's functional linear runs matmul + add for
// inputs of more than two dims, where at::linear folds a contiguous (N, T, D) input into one
// addmm with the bias fused (as PyTorch's Python nn.Linear does). Measured on the CPU: the
// whole training step was 10-20% slower through Linear::forward.
torch::Tensor Apply(const nn::Linear& linear, const torch::Tensor& x) {
  return at::linear(x, linear->weight, linear->bias);
}

// The key third of the qkv bias adds q . b_k to every logit of a query's row, a shift that
// softmax ignores: its true gradient is exactly zero, but the computed one is rounding noise that
// AdamW (which divides by its own running magnitude) turns into lr-sized steps, different for
// every reduction order, so 2 ranks x batch B and 1 process x 2B would drift apart in that slice
// alone. The key third enters detached: its gradient is exactly zero, the values are the same,
// and a nonzero key bias (a loaded checkpoint's) is kept as it is. With autograd off the bias
// is used as it is.
torch::Tensor QkvBias(const torch::Tensor& bias, int64_t dim) {
  if (!bias.requires_grad() || !torch::GradMode::is_enabled()) return bias;
  return torch::cat(
      {bias.narrow(0, 0, dim), bias.narrow(0, dim, dim).detach(), bias.narrow(0, 2 * dim, dim)});
}

}  // namespace

// --- building blocks --------------------------------------------------------------------------

AttentionImpl::AttentionImpl(int64_t dim, int64_t num_heads) : num_heads_(num_heads) {
  qkv_ = register_module("qkv", nn::Linear(nn::LinearOptions(dim, dim * 3).bias(true)));
  proj_ = register_module("proj", nn::Linear(dim, dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), tokens = x.size(1), dim = x.size(2);
  auto qkv = at::linear(x, qkv_->weight, QkvBias(qkv_->bias, dim))
                 .reshape({n, tokens, 3, num_heads_, dim / num_heads_})
                 .permute({2, 0, 3, 1, 4});  // (3, N, heads, T, head_dim)
  // unbind, not indexing: its backward is one stack, where three selects would each
  // zero-fill a full-size gradient.
  auto q_k_v = qkv.unbind(0);
  auto out = at::scaled_dot_product_attention(q_k_v[0], q_k_v[1], q_k_v[2]);  // (N, heads, T, hd)
  return Apply(proj_, out.transpose(1, 2).reshape({n, tokens, dim}));
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden_dim) {
  fc1_ = register_module("fc1", nn::Linear(dim, hidden_dim));
  act_ = register_module("act", nn::GELU(nn::GELUOptions().approximate("none")));
  fc2_ = register_module("fc2", nn::Linear(hidden_dim, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return Apply(fc2_, act_->forward(Apply(fc1_, x)));
}

BlockImpl::BlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, double layer_norm_eps,
                     double drop_path)
    : drop_path_(drop_path) {
  norm1_ = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(layer_norm_eps)));
  attn_ = register_module("attn", Attention(dim, num_heads));
  norm2_ = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(layer_norm_eps)));
  mlp_ =
      register_module("mlp", Mlp(dim, static_cast<int64_t>(static_cast<double>(dim) * mlp_ratio)));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  auto h = x + DropPath(attn_->forward(norm1_->forward(x)), drop_path_, is_training());
  return h + DropPath(mlp_->forward(norm2_->forward(h)), drop_path_, is_training());
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_chans, int64_t embed_dim, int64_t patch_size) {
  proj_ = register_module(
      "proj", nn::Conv2d(nn::Conv2dOptions(in_chans, embed_dim, patch_size).stride(patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& imgs) {
  return proj_->forward(imgs).flatten(2).transpose(1, 2);  // (N, D, h, w) -> (N, L, D)
}

// --- the masked autoencoder -------------------------------------------------------------------

MaskedAutoencoderViTImpl::MaskedAutoencoderViTImpl(const MaeOptions& options) : options_(options) {
  ThrowIfError(options_.Validate());
  const auto& o = options_;
  const int64_t num_patches = o.num_patches();

  // Encoder.
  patch_embed_ = register_module("patch_embed", PatchEmbed(o.in_chans, o.embed_dim, o.patch_size));
  cls_token_ = register_parameter("cls_token", torch::zeros({1, 1, o.embed_dim}));
  pos_embed_ = register_parameter("pos_embed", torch::zeros({1, num_patches + 1, o.embed_dim}),
                                  /*requires_grad=*/false);  // fixed sin-cos
  if (o.encoder_mask_token) {
    encoder_mask_token_ =
        register_parameter("encoder_mask_token", torch::zeros({1, 1, o.embed_dim}));
  }
  blocks_ = register_module("blocks", nn::ModuleList());
  for (int64_t i = 0; i < o.depth; ++i) {
    blocks_->push_back(Block(o.embed_dim, o.num_heads, o.mlp_ratio, o.layer_norm_eps));
  }
  norm_ = register_module("norm",
                          nn::LayerNorm(nn::LayerNormOptions({o.embed_dim}).eps(o.layer_norm_eps)));

  // Decoder.
  decoder_embed_ = register_module("decoder_embed", nn::Linear(o.embed_dim, o.decoder_embed_dim));
  mask_token_ = register_parameter("mask_token", torch::zeros({1, 1, o.decoder_embed_dim}));
  decoder_pos_embed_ = register_parameter("decoder_pos_embed",
                                          torch::zeros({1, num_patches + 1, o.decoder_embed_dim}),
                                          /*requires_grad=*/false);  // fixed sin-cos
  decoder_blocks_ = register_module("decoder_blocks", nn::ModuleList());
  for (int64_t i = 0; i < o.decoder_depth; ++i) {
    decoder_blocks_->push_back(
        Block(o.decoder_embed_dim, o.decoder_num_heads, o.mlp_ratio, o.layer_norm_eps));
  }
  decoder_norm_ = register_module(
      "decoder_norm",
      nn::LayerNorm(nn::LayerNormOptions({o.decoder_embed_dim}).eps(o.layer_norm_eps)));
  decoder_pred_ = register_module("decoder_pred", nn::Linear(o.decoder_embed_dim, o.patch_dim()));

  initialize_weights();
}

void MaskedAutoencoderViTImpl::initialize_weights() {
  torch::NoGradGuard no_grad;
  const int64_t g = options_.grid_size();
  pos_embed_.copy_(get_2d_sincos_pos_embed(options_.embed_dim, g, true).unsqueeze(0));
  decoder_pos_embed_.copy_(
      get_2d_sincos_pos_embed(options_.decoder_embed_dim, g, true).unsqueeze(0));

  // The patch-embed convolution is initialized as a Linear on its flattened view; its bias
  // keeps the Conv2d default, as in the official code.
  auto w = patch_embed_->proj()->weight;
  nn::init::xavier_uniform_(w.view({w.size(0), -1}));

  nn::init::normal_(cls_token_, 0.0, 0.02);
  nn::init::normal_(mask_token_, 0.0, 0.02);
  if (encoder_mask_token_.defined()) nn::init::normal_(encoder_mask_token_, 0.0, 0.02);

  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<nn::Linear>()) {
      nn::init::xavier_uniform_(linear->weight);
      if (linear->bias.defined()) nn::init::zeros_(linear->bias);
    } else if (auto* layer_norm = module->as<nn::LayerNorm>()) {
      nn::init::ones_(layer_norm->weight);
      nn::init::zeros_(layer_norm->bias);
    }
  }
}

torch::Tensor MaskedAutoencoderViTImpl::patchify(const torch::Tensor& imgs) const {
  const int64_t p = options_.patch_size, c = options_.in_chans;
  TORCH_CHECK(
      imgs.dim() == 4 && imgs.size(1) == c && imgs.size(2) == imgs.size(3) && imgs.size(2) % p == 0,
      "patchify: expected (N, ", c, ", H, H) with H a multiple of ", p, ", got ", imgs.sizes());
  const int64_t n = imgs.size(0), h = imgs.size(2) / p;
  auto x = imgs.reshape({n, c, h, p, h, p});
  x = x.permute({0, 2, 4, 3, 5, 1});  // nchpwq -> nhwpqc
  return x.reshape({n, h * h, p * p * c});
}

torch::Tensor MaskedAutoencoderViTImpl::unpatchify(const torch::Tensor& x) const {
  const int64_t p = options_.patch_size, c = options_.in_chans;
  const int64_t n = x.size(0), h = options_.grid_size();
  TORCH_CHECK(x.dim() == 3 && x.size(1) == h * h && x.size(2) == p * p * c,
              "unpatchify: expected (N, ", h * h, ", ", p * p * c, "), got ", x.sizes());
  auto imgs = x.reshape({n, h, h, p, p, c});
  imgs = imgs.permute({0, 5, 1, 3, 2, 4});  // nhwpqc -> nchpwq
  return imgs.reshape({n, c, h * p, h * p});
}

torch::Tensor MaskedAutoencoderViTImpl::sample_noise(int64_t batch_size,
                                                     torch::Device device) const {
  return torch::rand({batch_size, options_.num_patches()},
                     torch::TensorOptions().dtype(torch::kFloat32).device(device));
}

Masking MaskedAutoencoderViTImpl::random_masking(const torch::Tensor& noise) const {
  const int64_t n = noise.size(0), num_patches = options_.num_patches();
  const int64_t len_keep =
      NumVisible(options_.mask_sampling, options_.grid_size(), options_.mask_ratio);
  auto keys =
      MaskSortKeys(noise, options_.mask_sampling, options_.grid_size(), options_.mask_ratio);
  auto ids_shuffle = torch::argsort(keys, /*dim=*/1, /*descending=*/false);  // small is kept
  auto ids_restore = torch::argsort(ids_shuffle, /*dim=*/1, /*descending=*/false);
  auto mask = torch::ones({n, num_patches}, noise.options().dtype(torch::kFloat32));
  mask.slice(1, 0, len_keep).zero_();
  mask = torch::gather(mask, 1, ids_restore);  // 0 is keep, 1 is remove, in image order
  return {ids_shuffle.slice(1, 0, len_keep), mask, ids_restore};
}

EncoderOutput MaskedAutoencoderViTImpl::forward_encoder(const torch::Tensor& imgs,
                                                        const torch::Tensor& noise) {
  auto x = patch_embed_->forward(imgs);     // (N, L, D)
  auto patch_pos = pos_embed_.slice(1, 1);  // (1, L, D)
  x = x + patch_pos;
  Masking masking = random_masking(noise);
  const int64_t dim = x.size(2);
  if (options_.encoder_mask_token) {
    // Table 1c "w/ [M]": masked positions enter the encoder as a learned token + position.
    auto masked = masking.mask.unsqueeze(-1).to(torch::kBool);  // (N, L, 1)
    x = torch::where(masked, encoder_mask_token_ + patch_pos, x);
  } else {
    // A materialized index (repeat, not expand): gather's backward, scatter_add, takes a slow
    // path on a stride-0 index.
    x = torch::gather(x, 1, masking.ids_keep.unsqueeze(-1).repeat({1, 1, dim}));  // (N, keep, D)
  }
  auto cls = (cls_token_ + pos_embed_.slice(1, 0, 1)).expand({x.size(0), -1, -1});  // (N, 1, D)
  x = torch::cat({cls, x}, 1);
  for (const auto& block : *blocks_) x = block->as<Block>()->forward(x);
  x = norm_->forward(x);
  return {x, masking.mask, masking.ids_restore};
}

torch::Tensor MaskedAutoencoderViTImpl::forward_decoder(const torch::Tensor& latent,
                                                        const torch::Tensor& ids_restore) {
  auto x = Apply(decoder_embed_, latent);  // (N, 1 + keep, Dd)
  if (!options_.encoder_mask_token) {
    const int64_t n = x.size(0), dim = x.size(2);
    const int64_t num_masked = ids_restore.size(1) + 1 - x.size(1);
    auto mask_tokens = mask_token_.expand({n, num_masked, dim}).to(x.scalar_type());
    auto tokens = torch::cat({x.slice(1, 1), mask_tokens}, 1);  // (N, L, Dd), shuffled order
    tokens = torch::gather(tokens, 1, ids_restore.unsqueeze(-1).repeat({1, 1, dim}));  // unshuffle
    x = torch::cat({x.slice(1, 0, 1), tokens}, 1);  // (N, 1 + L, Dd)
  }
  x = x + decoder_pos_embed_;
  for (const auto& block : *decoder_blocks_) x = block->as<Block>()->forward(x);
  x = decoder_norm_->forward(x);
  x = Apply(decoder_pred_, x);  // (N, 1 + L, p*p*C)
  return x.slice(1, 1);         // drop the cls token
}

torch::Tensor MaskedAutoencoderViTImpl::loss_target(const torch::Tensor& imgs) const {
  auto target = patchify(imgs);  // (N, L, p*p*C)
  if (options_.norm_pix_loss) {
    auto mean = target.mean(-1, /*keepdim=*/true);
    auto var = target.var(-1, /*unbiased=*/true, /*keepdim=*/true);
    target = (target - mean) / (var + 1.0e-6).sqrt();
  }
  return target;
}

torch::Tensor MaskedAutoencoderViTImpl::forward_loss(const torch::Tensor& imgs,
                                                     const torch::Tensor& pred,
                                                     const torch::Tensor& mask) const {
  auto target = loss_target(imgs);
  auto loss = (pred - target).pow(2).mean(-1);  // (N, L), mean loss per patch
  return (loss * mask).sum() / mask.sum();      // mean over masked patches
}

MaeOutput MaskedAutoencoderViTImpl::forward(const torch::Tensor& imgs, torch::Tensor noise) {
  if (!noise.defined()) noise = sample_noise(imgs.size(0), imgs.device());
  auto encoded = forward_encoder(imgs, noise);
  auto pred = forward_decoder(encoded.latent, encoded.ids_restore);
  auto loss = forward_loss(imgs, pred, encoded.mask);
  return {loss, pred, encoded.mask, encoded.ids_restore};
}

int64_t MaskedAutoencoderViTImpl::num_trainable_parameters() const {
  int64_t total = 0;
  for (const auto& p : parameters()) {
    if (p.requires_grad()) total += p.numel();
  }
  return total;
}

}  // namespace maestro::model
