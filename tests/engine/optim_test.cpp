// Fine-tuning and linear-probing optimizer pieces, pinned to the official recipes.
#include <gtest/gtest.h>

#include <cmath>

#include "maestro/engine/lars.h"
#include "maestro/engine/param_groups.h"
#include "maestro/model/drop_path.h"
#include "maestro/model/mae.h"

namespace maestro::engine {
namespace {

TEST(LayerDecayTest, TwelveBlockVitScalesAtDecay065) {
  // The encoder of mae_vit_base_patch16 plus a classification head, as fine-tuning sees it.
  torch::manual_seed(0);
  model::MaskedAutoencoderViT mae(model::MaeVitBasePatch16());
  NamedParameters named;
  for (const auto& item : mae->named_parameters()) {
    if (!item.key().starts_with("decoder") && item.key() != "mask_token")
      named.emplace_back(item.key(), item.value());
  }
  named.emplace_back("head.weight", torch::zeros({1000, 768}, torch::requires_grad()));
  named.emplace_back("head.bias", torch::zeros({1000}, torch::requires_grad()));
  auto groups = LayerDecayGroups(named, 12, 0.05, 0.65);
  std::map<std::string, double> scale, decay;
  for (const auto& g : groups) {
    for (const auto& [name, p] : g.params) {
      scale[name] = g.lr_scale;
      decay[name] = g.weight_decay;
    }
  }
  EXPECT_DOUBLE_EQ(scale.at("patch_embed.proj.weight"), std::pow(0.65, 13));  // layer 0
  EXPECT_DOUBLE_EQ(scale.at("cls_token"), std::pow(0.65, 13));
  EXPECT_DOUBLE_EQ(scale.at("blocks.0.attn.qkv.weight"), std::pow(0.65, 12));
  EXPECT_DOUBLE_EQ(scale.at("blocks.11.mlp.fc2.weight"), 0.65);
  EXPECT_DOUBLE_EQ(scale.at("norm.weight"), 1.0);
  EXPECT_DOUBLE_EQ(scale.at("head.weight"), 1.0);
  for (int64_t k = 0; k < 12; ++k) {
    EXPECT_DOUBLE_EQ(scale.at("blocks." + std::to_string(k) + ".norm1.weight"),
                     std::pow(0.65, 12 - k));
  }
  // No weight decay on 1-D parameters and cls_token; the fixed pos_embed is not trained at all.
  EXPECT_EQ(decay.at("cls_token"), 0.0);
  EXPECT_EQ(decay.at("blocks.3.attn.qkv.bias"), 0.0);
  EXPECT_EQ(decay.at("blocks.3.attn.qkv.weight"), 0.05);
  EXPECT_EQ(decay.at("head.weight"), 0.05);
  EXPECT_EQ(scale.count("pos_embed"), 0u);
  // 14 layer ids, with and without decay where both occur.
  EXPECT_EQ(VitLayerId("blocks.7.attn.proj.weight", 13), 8);
  EXPECT_EQ(VitLayerId("fc_norm.weight", 13), 13);
  EXPECT_EQ(groups.size(), 28u);  // layers 0..13, each with a decay and a no-decay group
}

TEST(LarsTest, MatchesTheOfficialUpdateOnHandComputedNumbers) {
  auto w =
      torch::tensor({{3.0, 4.0}}, torch::dtype(torch::kFloat64).requires_grad(true));  // |w| = 5
  auto b = torch::tensor({1.0}, torch::dtype(torch::kFloat64).requires_grad(true));
  Lars lars(
      {ParamGroup{"decay", 0.1, 1.0, {{"w", w}}}, ParamGroup{"no_decay", 0.0, 1.0, {{"b", b}}}},
      {});
  for (int step = 0; step < 2; ++step) {
    w.mutable_grad() = torch::tensor({{0.6, 0.8}}, torch::kFloat64);
    b.mutable_grad() = torch::tensor({0.5}, torch::kFloat64);
    lars.Step(1.0);
  }
  // Step 1: d = g + 0.1 w = (0.9, 1.2), |d| = 1.5, trust = 0.001 * 5 / 1.5; mu = d * trust =
  // (0.003, 0.004); w = (2.997, 3.996). Step 2: |w| = 4.995, d = (0.8997, 1.1996), |d| = 1.4995,
  // d * trust = (0.0029970, 0.0039960) (to 7 digits), mu = 0.9 mu + that = (0.0056970, 0.0075960);
  // w = (2.991303, 3.988404). The bias: mu = 0.5, then 0.95; b = 0.5, then -0.45.
  EXPECT_NEAR(w[0][0].item<double>(), 2.991303, 1e-6);
  EXPECT_NEAR(w[0][1].item<double>(), 3.988404, 1e-6);
  EXPECT_NEAR(b[0].item<double>(), -0.45, 1e-12);
  EXPECT_NEAR(lars.StateDict().at("w.momentum_buffer")[0][1].item<double>(), 0.0075960, 1e-7);
}

TEST(DropPathTest, KeepsTheExpectation) {
  torch::manual_seed(0);
  auto x = torch::ones({20000, 3, 4});
  auto y = model::DropPath(x, 0.25, /*training=*/true);
  // Each sample is all zeros or all 1 / 0.75.
  auto per_sample = y.view({20000, -1});
  EXPECT_TRUE(torch::all((per_sample.amax(1) - per_sample.amin(1)).abs() < 1e-6).item<bool>());
  auto values = per_sample.select(1, 0);
  EXPECT_TRUE(torch::all((values == 0) | ((values - 1.0 / 0.75).abs() < 1e-6)).item<bool>());
  EXPECT_NEAR((values == 0).to(torch::kFloat64).mean().item<double>(), 0.25, 0.01);
  EXPECT_NEAR(y.mean().item<double>(), 1.0, 0.015);
  EXPECT_TRUE(torch::equal(model::DropPath(x, 0.25, /*training=*/false), x));
  EXPECT_TRUE(torch::equal(model::DropPath(x, 0.0, /*training=*/true), x));
}

}  // namespace
}  // namespace maestro::engine
