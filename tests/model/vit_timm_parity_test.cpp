// The fine-tuning ViT against timm's VisionTransformer (fixtures from timm_vit_fixture.py), and
// the MAE-encoder loading rules.
#include <gtest/gtest.h>

#include <cstdlib>

#include "fixture_util.h"
#include "maestro/engine/pretrained.h"
#include "maestro/model/vit.h"

namespace maestro::model {
namespace {

using maestro::testing::LoadFixture;

VitOptions Small(bool global_pool) {
  VitOptions o;
  o.img_size = 32;
  o.patch_size = 4;
  o.embed_dim = 64;
  o.depth = 2;
  o.num_heads = 4;
  o.num_classes = 10;
  o.global_pool = global_pool;
  return o;
}

TEST(VitTimmParityTest, LogitsMatchTimmForBothPoolings) {
  for (bool global_pool : {true, false}) {
    auto fixture =
        LoadFixture(global_pool ? "timm_vit_avg.safetensors" : "timm_vit_token.safetensors");
    VisionTransformer vit(Small(global_pool));
    vit->eval();
    checkpoint::TensorMap weights;
    for (const auto& [key, tensor] : fixture) {
      if (key.starts_with("weights."))
        weights[key.substr(8)] = checkpoint::FromTorch(tensor).value();
    }
    auto status = checkpoint::LoadStateDict(*vit, weights);
    ASSERT_TRUE(status.ok()) << status.ToString();  // timm's names, one to one
    torch::NoGradGuard no_grad;
    auto logits = vit->forward(fixture.at("images"));
    EXPECT_LE((logits - fixture.at("logits")).abs().max().item<double>(), 1e-5)
        << "global_pool " << global_pool;
  }
}

TEST(VitTimmParityTest, PosEmbedInterpolationMatchesTimm) {
  auto fixture = LoadFixture("timm_pos_embed.safetensors");
  for (int64_t size : {9, 5}) {
    auto ours = InterpolatePosEmbed(fixture.at("table"), size);
    const auto& want = fixture.at("to" + std::to_string(size));
    ASSERT_EQ(ours.sizes(), want.sizes());
    EXPECT_LE((ours - want).abs().max().item<double>(), 1e-6) << size;
    EXPECT_TRUE(
        torch::equal(ours.slice(1, 0, 1), fixture.at("table").slice(1, 0, 1)));  // cls row kept
  }
}

TEST(VitLoadTest, MaeEncoderLoadsAndMatchesTheEncoderOutput) {
  torch::manual_seed(3);
  MaeOptions mae_options = MaeVitTinyFashionMnist();
  mae_options.mask_ratio = 0.0;  // the encoder sees every patch
  MaskedAutoencoderViT mae(mae_options);
  auto state = checkpoint::StateDict(*mae).value();
  VitOptions cls_options = VitOptions::FromMae(mae_options, 10);
  cls_options.global_pool = false;  // keeps the MAE's final norm, reads the cls token
  VisionTransformer vit(cls_options);
  auto status = engine::LoadMaeEncoderIntoVit(vit, state);
  ASSERT_TRUE(status.ok()) << status.ToString();
  torch::NoGradGuard no_grad;
  vit->eval();
  auto imgs = torch::randn({4, 1, 28, 28});
  auto latent = mae->forward_encoder(imgs, torch::rand({4, 49})).latent;  // (N, 50, D), cls first
  EXPECT_TRUE(torch::allclose(vit->forward_features(imgs), latent.select(1, 0), 1e-4, 1e-5));

  // Global pooling: fc_norm and the head keep their init, the MAE's norm is left out.
  VisionTransformer pooled(VitOptions::FromMae(mae_options, 10));
  ASSERT_TRUE(engine::LoadMaeEncoderIntoVit(pooled, state).ok());
  // A larger input: pos_embed is interpolated from 7x7 to 8x8 patches.
  VitOptions bigger = VitOptions::FromMae(mae_options, 10);
  bigger.img_size = 32;
  VisionTransformer resized(bigger);
  ASSERT_TRUE(engine::LoadMaeEncoderIntoVit(resized, state).ok());
  EXPECT_EQ(resized->named_parameters()["pos_embed"].size(1), 65);
}

TEST(VitLoadTest, AnotherArchitectureListsWhatDoesNotMatch) {
  MaskedAutoencoderViT mae(MaeVitTinyFashionMnist());
  auto state = checkpoint::StateDict(*mae).value();
  VitOptions deeper = VitOptions::FromMae(MaeVitTinyFashionMnist(), 10);
  deeper.depth = 5;
  VisionTransformer vit(deeper);
  auto status = engine::LoadMaeEncoderIntoVit(vit, state);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("missing 'blocks.4.attn.qkv.weight'"), std::string::npos)
      << status.message();
  VitOptions wider = VitOptions::FromMae(MaeVitTinyFashionMnist(), 10);
  wider.embed_dim = 192;
  wider.num_heads = 3;
  VisionTransformer wide(wider);
  status = engine::LoadMaeEncoderIntoVit(wide, state);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(
      status.message().find("'blocks.0.attn.proj.bias' has shape [128], the model wants [192]"),
      std::string::npos)
      << status.message();
  // Every tensor of the encoder differs in width: the message counts them all.
  EXPECT_NE(status.message().find(" problems)"), std::string::npos)
      << status.message().substr(0, 80);
  auto partial = state;
  partial.erase("blocks.1.mlp.fc1.bias");
  VisionTransformer same(VitOptions::FromMae(MaeVitTinyFashionMnist(), 10));
  status = engine::LoadMaeEncoderIntoVit(same, partial);
  EXPECT_NE(status.message().find("missing 'blocks.1.mlp.fc1.bias'"), std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace maestro::model
