// Fixed 2-D sine-cosine position embeddings, as the official MAE code computes them.
#pragma once

#include <torch/torch.h>

namespace maestro::model {

// (grid_size * grid_size [+ 1], embed_dim) float32. The token of patch (row, col) is at
// row * grid_size + col; its channels are [sin(col w) | cos(col w) | sin(row w) | cos(row w)]
// with w_k = 1 / 10000^(k / (embed_dim / 4)), k < embed_dim / 4. With `cls_token` a zero row
// comes first. embed_dim must be a multiple of 4.
torch::Tensor get_2d_sincos_pos_embed(int64_t embed_dim, int64_t grid_size, bool cls_token);

}  // namespace maestro::model
