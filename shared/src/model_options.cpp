#include "maestro/shared/model_options.h"

namespace maestro::model {

const char* MaskSamplingName(MaskSampling sampling) {
  switch (sampling) {
    case MaskSampling::kRandom:
      return "random";
    case MaskSampling::kBlock:
      return "block";
    case MaskSampling::kGrid:
      return "grid";
  }
  return "unknown";
}

Result<MaskSampling> ParseMaskSampling(std::string_view name) {
  for (MaskSampling s : {MaskSampling::kRandom, MaskSampling::kBlock, MaskSampling::kGrid}) {
    if (name == MaskSamplingName(s)) return s;
  }
  return InvalidArgumentError("mask_sampling '" + std::string(name) +
                              "' is not one of random, block, grid");
}

Status MaeOptions::Validate() const {
  auto bad = [](const std::string& what) { return InvalidArgumentError("model: " + what); };
  if (patch_size <= 0 || img_size <= 0) return bad("img_size and patch_size must be positive");
  // Sizes no machine trains (and whose products would overflow): refused before anything is
  // allocated, a config error rather than an out-of-memory crash.
  auto at_most = [&](const char* key, int64_t value, int64_t limit) -> Status {
    if (value <= limit) return OkStatus();
    return bad(std::string(key) + " " + std::to_string(value) + " is above " +
               std::to_string(limit));
  };
  MAESTRO_RETURN_IF_ERROR(at_most("img_size", img_size, kMaxImgSize));
  MAESTRO_RETURN_IF_ERROR(at_most("in_chans", in_chans, kMaxChannels));
  MAESTRO_RETURN_IF_ERROR(at_most("embed_dim", embed_dim, kMaxWidth));
  MAESTRO_RETURN_IF_ERROR(at_most("decoder_embed_dim", decoder_embed_dim, kMaxWidth));
  MAESTRO_RETURN_IF_ERROR(at_most("depth", depth, kMaxDepth));
  MAESTRO_RETURN_IF_ERROR(at_most("decoder_depth", decoder_depth, kMaxDepth));
  if (!(mlp_ratio <= kMaxMlpRatio)) return bad("mlp_ratio must be at most 64");
  if (img_size % patch_size != 0) {
    return bad("img_size " + std::to_string(img_size) + " is not a multiple of patch_size " +
               std::to_string(patch_size));
  }
  if (in_chans <= 0) return bad("in_chans must be positive");
  if (depth <= 0 || decoder_depth <= 0) return bad("depth and decoder_depth must be at least 1");
  if (num_heads <= 0 || embed_dim % num_heads != 0) {
    return bad("embed_dim " + std::to_string(embed_dim) + " is not a multiple of num_heads " +
               std::to_string(num_heads));
  }
  if (decoder_num_heads <= 0 || decoder_embed_dim % decoder_num_heads != 0) {
    return bad("decoder_embed_dim " + std::to_string(decoder_embed_dim) +
               " is not a multiple of decoder_num_heads " + std::to_string(decoder_num_heads));
  }
  // The 2-D sin-cos embedding gives a quarter of the channels to each of sin/cos x row/col.
  if (embed_dim % 4 != 0 || decoder_embed_dim % 4 != 0) {
    return bad("embed_dim and decoder_embed_dim must be multiples of 4 (2-D sin-cos embedding)");
  }
  if (!(mlp_ratio > 0)) return bad("mlp_ratio must be positive");
  if (!(layer_norm_eps > 0)) return bad("layer_norm_eps must be positive");
  if (!(mask_ratio >= 0.0 && mask_ratio < 1.0)) {
    return bad("mask_ratio " + std::to_string(mask_ratio) + " is outside [0, 1)");
  }
  MAESTRO_RETURN_IF_ERROR(
      at_most("the patch count (img_size / patch_size)^2", num_patches(), kMaxPatches));
  const double state = TrainingStateBytes();
  if (state > kMaxTrainingStateBytes) {
    return bad("about " + std::to_string(static_cast<int64_t>(state / (1 << 30))) +
               " GiB of weights, gradients and AdamW moments (fp32), above the " +
               std::to_string(static_cast<int64_t>(kMaxTrainingStateBytes / (1 << 30))) +
               " GiB any one GPU or machine here holds");
  }
  return OkStatus();
}

double MaeOptions::ParameterCount() const {
  const double d = static_cast<double>(embed_dim), dd = static_cast<double>(decoder_embed_dim);
  // A block: qkv + projection (4 d^2) and the MLP (2 r d^2); the embeddings and the heads.
  const double block = (4.0 + 2.0 * mlp_ratio) * d * d,
               decoder_block = (4.0 + 2.0 * mlp_ratio) * dd * dd;
  return static_cast<double>(depth) * block + static_cast<double>(decoder_depth) * decoder_block +
         static_cast<double>(patch_dim()) * (d + dd) + d * dd;
}

double MaeOptions::TrainingStateBytes() const { return ParameterCount() * 16.0; }

namespace {

MaeOptions Official(int64_t patch, int64_t dim, int64_t depth, int64_t heads) {
  MaeOptions o;
  o.patch_size = patch;
  o.embed_dim = dim;
  o.depth = depth;
  o.num_heads = heads;
  o.decoder_embed_dim = 512;
  o.decoder_depth = 8;
  o.decoder_num_heads = 16;
  return o;
}

}  // namespace

MaeOptions MaeVitBasePatch16() { return Official(16, 768, 12, 12); }
MaeOptions MaeVitLargePatch16() { return Official(16, 1024, 24, 16); }
MaeOptions MaeVitHugePatch14() { return Official(14, 1280, 32, 16); }

MaeOptions MaeVitTinyFashionMnist() {
  MaeOptions o;
  o.img_size = 28;
  o.patch_size = 4;  // 7 x 7 = 49 patches, 12 visible at mask ratio 0.75
  o.in_chans = 1;
  o.embed_dim = 128;
  o.depth = 4;
  o.num_heads = 4;
  o.decoder_embed_dim = 64;
  o.decoder_depth = 2;
  o.decoder_num_heads = 4;
  return o;
}

Result<MaeOptions> MaePreset(std::string_view name) {
  if (name == "mae_vit_base_patch16") return MaeVitBasePatch16();
  if (name == "mae_vit_large_patch16") return MaeVitLargePatch16();
  if (name == "mae_vit_huge_patch14") return MaeVitHugePatch14();
  if (name == "mae_vit_tiny_fmnist") return MaeVitTinyFashionMnist();
  std::string known;
  for (const auto& n : MaePresetNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgumentError("unknown model preset '" + std::string(name) + "' (known: " + known +
                              ")");
}

std::vector<std::string> MaePresetNames() {
  return {"mae_vit_base_patch16", "mae_vit_large_patch16", "mae_vit_huge_patch14",
          "mae_vit_tiny_fmnist"};
}

}  // namespace maestro::model
