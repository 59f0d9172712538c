#include "maestro/model/flops.h"

#include "maestro/model/masking.h"

namespace maestro::model {
namespace {

// One pre-norm block on `tokens` tokens of width `dim`: qkv, proj, two MLP layers, and the two
// attention products (scores and weighted values).
double BlockFlops(double tokens, double dim, double mlp_ratio) {
  double linear = 2.0 * tokens * dim * (3.0 * dim + dim + 2.0 * mlp_ratio * dim);
  double attention = 2.0 * 2.0 * tokens * tokens * dim;
  return linear + attention;
}

}  // namespace

MaeFlops MaeFlopsPerImage(const MaeOptions& o) {
  const double num_patches = static_cast<double>(o.num_patches());
  const double patch_dim = static_cast<double>(o.patch_dim());
  const double dim = static_cast<double>(o.embed_dim);
  const double dec = static_cast<double>(o.decoder_embed_dim);
  const double visible =
      o.encoder_mask_token
          ? num_patches
          : static_cast<double>(NumVisible(o.mask_sampling, o.grid_size(), o.mask_ratio));
  const double enc_tokens = visible + 1, dec_tokens = num_patches + 1;
  MaeFlops flops;
  flops.encoder_forward = 2.0 * num_patches * patch_dim * dim +
                          static_cast<double>(o.depth) * BlockFlops(enc_tokens, dim, o.mlp_ratio);
  flops.decoder_forward =
      2.0 * enc_tokens * dim * dec +
      static_cast<double>(o.decoder_depth) * BlockFlops(dec_tokens, dec, o.mlp_ratio) +
      2.0 * dec_tokens * dec * patch_dim;
  return flops;
}

}  // namespace maestro::model
