// Import and export of Hugging Face `ViTMAEForPreTraining` weights.
//
// maestro names parameters as the official MAE code does (`blocks.0.attn.qkv.weight`,
// `decoder_pred.bias`, ...). Hugging Face names them differently and keeps query, key and
// value as three Linear layers where the official code has one fused `qkv`; the fused weight
// is the row-wise concatenation [query; key; value], so the conversion is a byte-level concat
// (import) or split (export) with no arithmetic. Works on any dtype; no LibTorch needed.
//
// Two Hugging Face layouts exist. The one published checkpoints use (transformers 4.x,
// `vit.encoder.layer.0.attention.attention.query.weight`, `intermediate.dense`,
// `output.dense`), and the one transformers 5 modules hold in memory
// (`vit.layers.0.attention.q_proj.weight`, `attention.o_proj`, `mlp.fc1`, `mlp.fc2`), which
// transformers 5 renames the former into when loading. Import accepts both, and the decoder
// name transformers 5.x's save_pretrained writes (`decoder.decoder_encoder.layer.N`).
#pragma once

#include "maestro/checkpoint/safetensors.h"
#include "maestro/shared/status.h"

namespace maestro::checkpoint {

// Renames every tensor of a ViTMAEForPreTraining state dict (also a ViTMAEModel one, whose
// keys lack the "vit." prefix) to official MAE names, fusing q/k/v. INVALID_ARGUMENT names the
// first key it does not know, or a q/k/v triple that is incomplete or inconsistent.
Result<TensorMap> ImportHfVitMae(const TensorMap& hf_tensors);

enum class HfLayout {
  kHub,            // transformers 4.x names, as published checkpoints hold them
  kTransformers5,  // transformers 5 module names
};

// The inverse: official MAE names to ViTMAEForPreTraining names in `layout`, splitting qkv in
// three. INVALID_ARGUMENT names the first key it does not know (for example
// `encoder_mask_token`, which Hugging Face has no place for).
Result<TensorMap> ExportHfVitMae(const TensorMap& official_tensors,
                                 HfLayout layout = HfLayout::kHub);

}  // namespace maestro::checkpoint
