// Mask sampling: random, block-wise (BEiT) and grid-wise (paper Figure 6).
#include "maestro/model/masking.h"

#include <gtest/gtest.h>

#include "maestro/model/mae.h"

namespace maestro::model {
namespace {

TEST(MaskingTest, NumVisible) {
  EXPECT_EQ(NumVisible(MaskSampling::kRandom, 14, 0.75), 49);
  EXPECT_EQ(NumVisible(MaskSampling::kRandom, 7, 0.75), 12);  // int(49 * 0.25)
  EXPECT_EQ(NumVisible(MaskSampling::kBlock, 7, 0.75), 13);   // 49 - int(49 * 0.75)
  EXPECT_EQ(NumVisible(MaskSampling::kGrid, 14, 0.75), 49);
  EXPECT_EQ(NumVisible(MaskSampling::kGrid, 7, 0.75), 16);
}

// Fraction of masked patches with at least one masked 4-neighbour.
double Clustering(const torch::Tensor& mask) {
  const int64_t g = mask.size(0);
  auto m = mask.accessor<bool, 2>();
  int64_t masked = 0, with_neighbour = 0;
  for (int64_t r = 0; r < g; ++r) {
    for (int64_t c = 0; c < g; ++c) {
      if (!m[r][c]) continue;
      ++masked;
      bool n = (r > 0 && m[r - 1][c]) || (r + 1 < g && m[r + 1][c]) || (c > 0 && m[r][c - 1]) ||
               (c + 1 < g && m[r][c + 1]);
      with_neighbour += n;
    }
  }
  return masked ? static_cast<double>(with_neighbour) / static_cast<double>(masked) : 0.0;
}

TEST(MaskingTest, BlockMaskHasExactCountAndIsBlocky) {
  for (int64_t grid : {7, 14}) {
    for (double ratio : {0.4, 0.5, 0.75, 0.9}) {
      const int64_t want = static_cast<int64_t>(static_cast<double>(grid * grid) * ratio);
      double clustering = 0;
      const int trials = 50;
      for (uint64_t seed = 0; seed < trials; ++seed) {
        auto mask = BlockMask(grid, ratio, seed);
        ASSERT_EQ(mask.sum().item<int64_t>(), want) << grid << " " << ratio << " " << seed;
        clustering += Clustering(mask);
      }
      EXPECT_GT(clustering / trials, 0.9) << grid << " " << ratio;
    }
  }
  EXPECT_TRUE(torch::equal(BlockMask(14, 0.75, 7), BlockMask(14, 0.75, 7)));
  EXPECT_FALSE(torch::equal(BlockMask(14, 0.75, 7), BlockMask(14, 0.75, 8)));
}

// The 224 px / patch 16 grid of the paper (14 x 14) on a narrow, shallow model.
MaeOptions Narrow224(MaskSampling sampling) {
  MaeOptions o;
  o.img_size = 224;
  o.embed_dim = 64;
  o.depth = 1;
  o.num_heads = 4;
  o.decoder_embed_dim = 32;
  o.decoder_depth = 1;
  o.decoder_num_heads = 4;
  o.mask_sampling = sampling;
  return o;
}

TEST(MaskingTest, BlockSamplingThroughTheModelIsAPureFunctionOfNoise) {
  MaeOptions o = Narrow224(MaskSampling::kBlock);
  MaskedAutoencoderViT model(o);
  torch::manual_seed(3);
  auto noise = torch::rand({8, 196});
  Masking a = model->random_masking(noise);
  Masking b = model->random_masking(noise.clone());
  EXPECT_TRUE(torch::equal(a.mask, b.mask));
  EXPECT_TRUE(torch::all(a.mask.sum(1) == 147).item<bool>());  // int(196 * 0.75)
  for (int64_t n = 0; n < 8; ++n) {
    EXPECT_GT(Clustering(a.mask[n].reshape({14, 14}).to(torch::kBool)), 0.8);
  }
  // Rows differ: each image draws its own blocks.
  EXPECT_FALSE(torch::equal(a.mask[0], a.mask[1]));
}

TEST(MaskingTest, GridSamplingKeepsEvenRowsAndColumns) {
  MaeOptions o = Narrow224(MaskSampling::kGrid);
  MaskedAutoencoderViT model(o);
  auto noise = torch::rand({3, 196});
  Masking m = model->random_masking(noise);
  EXPECT_EQ(m.ids_keep.size(1), 49);
  for (int64_t n = 0; n < 3; ++n) {
    auto grid = m.mask[n].reshape({14, 14});
    for (int64_t r = 0; r < 14; ++r) {
      for (int64_t c = 0; c < 14; ++c) {
        bool kept = (r % 2 == 0) && (c % 2 == 0);
        ASSERT_EQ(grid[r][c].item<float>(), kept ? 0.0f : 1.0f) << r << "," << c;
      }
    }
  }
  auto out = model->forward(torch::randn({3, 3, 224, 224}), noise);
  EXPECT_TRUE(std::isfinite(out.loss.item<float>()));
}

TEST(MaskingTest, ParseNames) {
  EXPECT_EQ(*ParseMaskSampling("block"), MaskSampling::kBlock);
  EXPECT_FALSE(ParseMaskSampling("checkerboard").ok());
}

}  // namespace
}  // namespace maestro::model
