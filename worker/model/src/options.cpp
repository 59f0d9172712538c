#include "maestro/model/options.h"

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
  return OkStatus();
}

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
