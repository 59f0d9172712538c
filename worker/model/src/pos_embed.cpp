#include "maestro/model/pos_embed.h"

namespace maestro::model {
namespace {

// (M,) positions -> (M, D) as [sin(pos w) | cos(pos w)], computed in float64 as numpy does.
torch::Tensor get_1d_sincos_pos_embed(int64_t embed_dim, const torch::Tensor& positions) {
  auto omega = torch::arange(embed_dim / 2, torch::kFloat64) / (embed_dim / 2.0);
  omega = 1.0 / torch::pow(10000.0, omega);                          // (D/2,)
  auto out = torch::outer(positions.reshape({-1}), omega);           // (M, D/2)
  return torch::cat({torch::sin(out), torch::cos(out)}, /*dim=*/1);  // (M, D)
}

}  // namespace

torch::Tensor get_2d_sincos_pos_embed(int64_t embed_dim, int64_t grid_size, bool cls_token) {
  TORCH_CHECK(embed_dim % 4 == 0, "embed_dim must be a multiple of 4, got ", embed_dim);
  auto coords = torch::arange(grid_size, torch::kFloat64);
  // Token t = row * g + col; the official grid puts the column coordinate first.
  auto rows = coords.repeat_interleave(grid_size);  // (L,)
  auto cols = coords.repeat({grid_size});           // (L,)
  auto emb = torch::cat(
      {get_1d_sincos_pos_embed(embed_dim / 2, cols), get_1d_sincos_pos_embed(embed_dim / 2, rows)},
      /*dim=*/1);  // (L, D)
  if (cls_token) emb = torch::cat({torch::zeros({1, embed_dim}, torch::kFloat64), emb}, 0);
  return emb.to(torch::kFloat32);
}

}  // namespace maestro::model
