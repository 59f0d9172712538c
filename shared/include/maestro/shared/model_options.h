// The MAE model's hyper-parameters and the paper's named presets.
//
// Every ablation of the paper's Table 1 is a field here (mask ratio, decoder depth and width,
// mask token in the encoder, target normalization, mask sampling), so a sweep can grid over
// any of them. Plain data; no LibTorch dependency.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::model {

// How masked patches are chosen (paper, Figure 6 and Table 1f).
enum class MaskSampling {
  kRandom,  // uniform without replacement: argsort of per-patch uniform noise
  kBlock,   // BEiT-style rectangular blocks, exactly int(L * mask_ratio) patches masked
  kGrid,    // keep the patches with an even row and an even column (one in four on even grids)
};

const char* MaskSamplingName(MaskSampling sampling);
// "random", "block" or "grid"; INVALID_ARGUMENT otherwise.
Result<MaskSampling> ParseMaskSampling(std::string_view name);

// Validate()'s limits: far beyond any MAE the paper or its successors train, and small enough
// that no size computed from them overflows.
inline constexpr int64_t kMaxImgSize = 4096;
inline constexpr int64_t kMaxChannels = 64;
inline constexpr int64_t kMaxWidth = 16384;
inline constexpr int64_t kMaxDepth = 512;
inline constexpr double kMaxMlpRatio = 64;
inline constexpr int64_t kMaxPatches = 65536;
inline constexpr double kMaxTrainingStateBytes = 1024.0 * (1 << 30);  // 1 TiB

struct MaeOptions {
  // Encoder (a plain ViT).
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t embed_dim = 1024;
  int64_t depth = 24;
  int64_t num_heads = 16;
  // Decoder (paper default 512 wide, 8 deep; Table 1a/1b vary these).
  int64_t decoder_embed_dim = 512;
  int64_t decoder_depth = 8;
  int64_t decoder_num_heads = 16;
  double mlp_ratio = 4.0;
  double layer_norm_eps = 1e-6;
  // Pre-training task.
  double mask_ratio = 0.75;
  MaskSampling mask_sampling = MaskSampling::kRandom;
  bool norm_pix_loss = false;       // Table 1d: per-patch normalized pixels as the target
  bool encoder_mask_token = false;  // Table 1c: the encoder sees mask tokens too

  // Weights of encoder and decoder (an estimate within a few percent: blocks, patch
  // embeddings, prediction head; norms and biases left out), and the fp32 training state they
  // need: weights, gradients and two AdamW moments (16 bytes each).
  double ParameterCount() const;
  double TrainingStateBytes() const;

  int64_t grid_size() const { return img_size / patch_size; }
  int64_t num_patches() const { return grid_size() * grid_size(); }
  // Pixels predicted per patch: p * p * channels.
  int64_t patch_dim() const { return patch_size * patch_size * in_chans; }

  // INVALID_ARGUMENT naming the first field that cannot build a model.
  Status Validate() const;
};

// The official presets (models_mae.py), decoder 512 x 8 with 16 heads.
MaeOptions MaeVitBasePatch16();
MaeOptions MaeVitLargePatch16();
MaeOptions MaeVitHugePatch14();
// A small model for 28x28 single-channel Fashion-MNIST on a 2-core CPU (docs/model.md).
MaeOptions MaeVitTinyFashionMnist();

// Preset names: "mae_vit_base_patch16", "mae_vit_large_patch16", "mae_vit_huge_patch14",
// "mae_vit_tiny_fmnist". INVALID_ARGUMENT lists the known names for any other.
Result<MaeOptions> MaePreset(std::string_view name);
std::vector<std::string> MaePresetNames();

}  // namespace maestro::model
