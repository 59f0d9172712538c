// The paper's numbers, pinned: position embeddings, masking, loss, init, sizes and names.
#include "maestro/model/mae.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>

#include "maestro/checkpoint/torch_bridge.h"
#include "maestro/model/pos_embed.h"

namespace maestro::model {
namespace {

MaeOptions Small() {
  MaeOptions o;
  o.img_size = 32;
  o.patch_size = 4;  // 8 x 8 = 64 patches
  o.in_chans = 3;
  o.embed_dim = 32;
  o.depth = 2;
  o.num_heads = 4;
  o.decoder_embed_dim = 16;
  o.decoder_depth = 1;
  o.decoder_num_heads = 2;
  return o;
}

TEST(PosEmbedTest, PaperChannelOrderAtD768) {
  auto table = get_2d_sincos_pos_embed(768, 14, /*cls_token=*/true);  // (1 + 196, 768)
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{197, 768}));
  EXPECT_EQ(table[0].abs().max().item<float>(), 0.0f);  // cls row is zero
  auto patch = table[1 + 0 * 14 + 1];                   // row 0, col 1
  EXPECT_NEAR(patch[0].item<float>(), std::sin(1.0), 1e-6);
  EXPECT_NEAR(patch[192].item<float>(), std::cos(1.0), 1e-6);
  EXPECT_NEAR(patch[384].item<float>(), 0.0, 1e-6);
  EXPECT_NEAR(patch[576].item<float>(), 1.0, 1e-6);
  auto lower = table[1 + 2 * 14 + 0];  // row 2, col 0: the row halves move
  EXPECT_NEAR(lower[0].item<float>(), 0.0, 1e-6);
  EXPECT_NEAR(lower[192].item<float>(), 1.0, 1e-6);
  EXPECT_NEAR(lower[384].item<float>(), std::sin(2.0), 1e-6);
  EXPECT_NEAR(lower[576].item<float>(), std::cos(2.0), 1e-6);
  // Second frequency: w_1 = 1 / 10000^(1/192).
  EXPECT_NEAR(patch[1].item<float>(), std::sin(1.0 / std::pow(10000.0, 1.0 / 192)), 1e-6);
}

TEST(MaeTest, PatchifyLayoutAndInverse) {
  torch::manual_seed(0);
  MaskedAutoencoderViT model(Small());
  auto imgs = torch::randn({2, 3, 32, 32});
  auto patches = model->patchify(imgs);  // (2, 64, 48)
  ASSERT_EQ(patches.sizes(), (std::vector<int64_t>{2, 64, 48}));
  // Patch (row 1, col 2), pixel (row 3, col 0), channel 2.
  EXPECT_EQ(patches[1][1 * 8 + 2][(3 * 4 + 0) * 3 + 2].item<float>(),
            imgs[1][2][1 * 4 + 3][2 * 4 + 0].item<float>());
  EXPECT_TRUE(torch::equal(model->unpatchify(patches), imgs));
}

TEST(MaeTest, RandomMaskingKeepsExactCountAndRestores) {
  torch::manual_seed(0);
  for (double ratio : {0.75, 0.5, 0.9, 0.0}) {
    MaeOptions o = Small();
    o.mask_ratio = ratio;
    MaskedAutoencoderViT model(o);
    auto noise = torch::rand({4, 64});
    Masking m = model->random_masking(noise);
    const int64_t keep = static_cast<int64_t>(64 * (1.0 - ratio));
    ASSERT_EQ(m.ids_keep.size(1), keep) << ratio;
    EXPECT_EQ(m.mask.sum().item<float>(), static_cast<float>(4 * (64 - keep)));
    // ids_restore inverts the shuffle (argsort of the noise).
    auto ids_shuffle = torch::argsort(noise, 1, false);
    EXPECT_TRUE(torch::equal(torch::gather(ids_shuffle, 1, m.ids_restore),
                             torch::arange(64).expand({4, 64})));
    // The kept patches are those with the smallest noise, and exactly those are unmasked.
    EXPECT_TRUE(torch::equal(m.ids_keep, ids_shuffle.slice(1, 0, keep)));
    EXPECT_TRUE(torch::equal(m.mask.to(torch::kBool), m.ids_restore >= keep));
  }
}

TEST(MaeTest, ForwardShapes) {
  torch::manual_seed(0);
  MaskedAutoencoderViT model(Small());
  auto imgs = torch::randn({2, 3, 32, 32});
  auto noise = torch::rand({2, 64});
  auto enc = model->forward_encoder(imgs, noise);
  EXPECT_EQ(enc.latent.sizes(), (std::vector<int64_t>{2, 1 + 16, 32}));
  auto out = model->forward(imgs, noise);
  EXPECT_EQ(out.pred.sizes(), (std::vector<int64_t>{2, 64, 48}));
  EXPECT_EQ(out.loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(out.loss.item<float>()));
}

TEST(MaeTest, LossIgnoresVisiblePatches) {
  torch::manual_seed(0);
  for (bool norm_pix : {false, true}) {
    MaeOptions o = Small();
    o.norm_pix_loss = norm_pix;
    MaskedAutoencoderViT model(o);
    auto imgs = torch::randn({2, 3, 32, 32});
    auto out = model->forward(imgs, torch::rand({2, 64}));
    auto pred = out.pred.detach().clone().requires_grad_(true);
    auto loss = model->forward_loss(imgs, pred, out.mask);
    loss.backward();
    auto visible = (out.mask == 0);
    EXPECT_EQ(pred.grad().index({visible}).abs().max().item<float>(), 0.0f);
    EXPECT_GT(pred.grad().index({visible.logical_not()}).abs().max().item<float>(), 0.0f);
    // Changing visible predictions changes nothing.
    auto shifted = pred.detach() + 100.0 * visible.unsqueeze(-1).to(torch::kFloat32);
    EXPECT_EQ(model->forward_loss(imgs, shifted, out.mask).item<float>(), loss.item<float>());
    // The value: mean over masked patches of the per-patch mean squared error.
    auto target = model->patchify(imgs);
    if (norm_pix) {
      target = (target - target.mean(-1, true)) / (target.var(-1, true, true) + 1e-6).sqrt();
    }
    auto per_patch = (pred.detach() - target).pow(2).mean(-1);
    auto expected = per_patch.index({visible.logical_not()}).mean();
    EXPECT_NEAR(loss.item<float>(), expected.item<float>(), 1e-5);
  }
}

TEST(MaeTest, OfficialInitialization) {
  torch::manual_seed(0);
  MaskedAutoencoderViT model(MaeVitTinyFashionMnist());
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const auto& p = item.value();
    auto ends_with = [&name](const std::string& s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (name.find("norm") != std::string::npos && ends_with(".weight")) {
      EXPECT_TRUE(torch::all(p == 1).item<bool>()) << name;
    } else if (ends_with(".bias") && name != "patch_embed.proj.bias") {
      EXPECT_TRUE(torch::all(p == 0).item<bool>()) << name;
    } else if (ends_with(".weight") && p.dim() >= 2) {  // Linear, and the conv as a Linear
      const double fan_out = static_cast<double>(p.size(0));
      const double fan_in = static_cast<double>(p.numel()) / fan_out;
      const double bound = std::sqrt(6.0 / (fan_in + fan_out));
      EXPECT_LE(p.abs().max().item<double>(), bound + 1e-7) << name;
      EXPECT_GT(p.abs().max().item<double>(), 0.9 * bound) << name;
    }
  }
  // cls and mask tokens: normal(0, 0.02).
  auto cls = model->named_parameters()["cls_token"];
  EXPECT_NEAR(cls.std().item<double>(), 0.02, 0.006);
  EXPECT_FALSE(model->named_parameters()["pos_embed"].requires_grad());
  EXPECT_FALSE(model->named_parameters()["decoder_pos_embed"].requires_grad());
  EXPECT_TRUE(torch::equal(model->named_parameters()["pos_embed"][0],
                           get_2d_sincos_pos_embed(128, 7, true)));
}

// The official models_mae.py state_dict keys, built from its structure.
std::vector<std::string> OfficialKeys(int64_t depth, int64_t decoder_depth) {
  std::vector<std::string> keys = {"cls_token", "pos_embed", "patch_embed.proj.weight",
                                   "patch_embed.proj.bias"};
  const char* block_params[] = {"norm1.weight",  "norm1.bias",       "attn.qkv.weight",
                                "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                "norm2.weight",  "norm2.bias",       "mlp.fc1.weight",
                                "mlp.fc1.bias",  "mlp.fc2.weight",   "mlp.fc2.bias"};
  for (int64_t i = 0; i < depth; ++i) {
    for (const char* p : block_params) keys.push_back("blocks." + std::to_string(i) + "." + p);
  }
  keys.insert(keys.end(), {"norm.weight", "norm.bias", "decoder_embed.weight", "decoder_embed.bias",
                           "mask_token", "decoder_pos_embed"});
  for (int64_t i = 0; i < decoder_depth; ++i) {
    for (const char* p : block_params)
      keys.push_back("decoder_blocks." + std::to_string(i) + "." + p);
  }
  keys.insert(keys.end(), {"decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight",
                           "decoder_pred.bias"});
  std::sort(keys.begin(), keys.end());
  return keys;
}

TEST(MaeTest, BasePresetSizeAndOfficialNames) {
  MaskedAutoencoderViT model(MaeVitBasePatch16());
  EXPECT_NEAR(static_cast<double>(model->num_trainable_parameters()) / 1e6, 111.7, 0.05);
  std::vector<std::string> names;
  for (const auto& item : model->named_parameters()) names.push_back(item.key());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, OfficialKeys(12, 8));
  EXPECT_EQ(model->named_parameters()["decoder_pred.weight"].sizes(),
            (std::vector<int64_t>{16 * 16 * 3, 512}));
  EXPECT_EQ(model->named_parameters()["blocks.0.attn.qkv.weight"].sizes(),
            (std::vector<int64_t>{3 * 768, 768}));
}

TEST(MaeTest, LargePresetSize) {
  MaskedAutoencoderViT model(MaeVitLargePatch16());
  EXPECT_NEAR(static_cast<double>(model->num_trainable_parameters()) / 1e6, 329.2, 0.05);
}

TEST(MaeTest, PresetsByName) {
  for (const auto& name : MaePresetNames()) EXPECT_TRUE(MaePreset(name).ok()) << name;
  EXPECT_EQ(MaePreset("mae_vit_huge_patch14")->patch_size, 14);
  auto bad = MaePreset("vit_giant");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("mae_vit_base_patch16"), std::string::npos);
}

TEST(MaeTest, InvalidOptionsThrowNamingTheField) {
  MaeOptions o = Small();
  o.img_size = 30;
  try {
    MaskedAutoencoderViT model(o);
    FAIL() << "accepted img_size 30 with patch 4";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("img_size"), std::string::npos);
  }
  o = Small();
  o.mask_ratio = 1.0;
  EXPECT_THROW(MaskedAutoencoderViT{o}, Error);
  o = Small();
  o.num_heads = 5;
  EXPECT_THROW(MaskedAutoencoderViT{o}, Error);
}

// The key third of a qkv bias adds q . b_k to every logit of a query's row, which softmax
// ignores: its gradient is exactly zero (not rounding noise that AdamW would turn into lr-sized
// steps differing between 2 ranks x B and 1 x 2B), while the q and v thirds learn, and a nonzero
// key bias (a loaded checkpoint's) still changes nothing.
TEST(MaeTest, KeyBiasGradientIsExactlyZero) {
  torch::manual_seed(0);
  MaskedAutoencoderViT model(Small());
  auto imgs = torch::randn({4, 3, 32, 32});
  auto noise = torch::rand({4, 64});
  auto out = model->forward(imgs, noise);
  out.loss.backward();
  int checked = 0;
  for (const auto& item : model->named_parameters()) {
    if (!item.key().ends_with("attn.qkv.bias")) continue;
    const auto grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    const int64_t d = grad.size(0) / 3;
    EXPECT_EQ(grad.narrow(0, d, d).abs().max().item<float>(), 0.0f) << item.key();
    EXPECT_GT(grad.narrow(0, 0, d).abs().max().item<float>(), 0.0f) << item.key();
    EXPECT_GT(grad.narrow(0, 2 * d, d).abs().max().item<float>(), 0.0f) << item.key();
    ++checked;
  }
  EXPECT_EQ(checked, 3);  // two encoder blocks, one decoder block
  torch::NoGradGuard no_grad;
  for (const auto& item : model->named_parameters()) {
    if (!item.key().ends_with("attn.qkv.bias")) continue;
    const int64_t d = item.value().size(0) / 3;
    item.value().narrow(0, d, d).uniform_(-1.0, 1.0);
  }
  EXPECT_TRUE(torch::allclose(model->forward(imgs, noise).pred, out.pred, 1e-4, 1e-5));
}

TEST(MaeTest, EncoderWithMaskTokensSeesEveryPosition) {
  torch::manual_seed(0);
  MaeOptions o = Small();
  o.encoder_mask_token = true;
  MaskedAutoencoderViT model(o);
  EXPECT_TRUE(model->named_parameters().contains("encoder_mask_token"));
  auto imgs = torch::randn({2, 3, 32, 32});
  auto noise = torch::rand({2, 64});
  auto enc = model->forward_encoder(imgs, noise);
  EXPECT_EQ(enc.latent.sizes(), (std::vector<int64_t>{2, 65, 32}));
  auto out = model->forward(imgs, noise);
  out.loss.backward();
  EXPECT_GT(model->named_parameters()["encoder_mask_token"].grad().abs().sum().item<float>(), 0);
  // The masked patches' pixels do not reach the encoder: changing them leaves the latent alone.
  auto mask_pixels = model->unpatchify(enc.mask.unsqueeze(-1).expand({-1, -1, 48}));
  auto altered = imgs + 5.0 * mask_pixels;
  auto enc2 = model->forward_encoder(altered, noise);
  EXPECT_TRUE(torch::allclose(enc.latent, enc2.latent, 1e-5, 1e-6));
}

TEST(MaeTest, StateDictRoundTripThroughSafetensors) {
  torch::manual_seed(1);
  MaskedAutoencoderViT a(Small());
  torch::manual_seed(2);
  MaskedAutoencoderViT b(Small());
  // std::filesystem is avoided in programs linked with LibTorch (shared/file_util.h).
  const std::string path = "/tmp/maestro_model_" + std::to_string(::getpid()) + ".safetensors";
  auto state = checkpoint::StateDict(*a);
  ASSERT_TRUE(state.ok());
  ASSERT_TRUE(checkpoint::WriteSafetensors(path, {*state, {{"format", "pt"}}}).ok());
  auto read = checkpoint::ReadSafetensors(path);
  ASSERT_TRUE(read.ok());
  ASSERT_TRUE(checkpoint::LoadStateDict(*b, read->tensors).ok());
  auto imgs = torch::randn({2, 3, 32, 32});
  auto noise = torch::rand({2, 64});
  EXPECT_TRUE(torch::equal(a->forward(imgs, noise).pred, b->forward(imgs, noise).pred));
  ::unlink(path.c_str());

  // A wrong shape is refused, naming the tensor, and nothing is modified.
  auto wrong = read->tensors;
  wrong["decoder_pred.bias"].shape = {2, 24};
  auto before = checkpoint::StateDict(*b);
  auto status = checkpoint::LoadStateDict(*b, wrong);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("decoder_pred.bias"), std::string::npos);
  wrong.erase("norm.bias");
  wrong["extra"] = wrong["norm.weight"];
  status = checkpoint::LoadStateDict(*b, wrong);
  EXPECT_NE(status.message().find("missing 'norm.bias'"), std::string::npos);
  EXPECT_NE(status.message().find("unexpected 'extra'"), std::string::npos);
  EXPECT_EQ(before->at("norm.weight").bytes, checkpoint::StateDict(*b)->at("norm.weight").bytes);
}

}  // namespace
}  // namespace maestro::model

#include "maestro/model/flops.h"

namespace maestro::model {
namespace {

TEST(FlopsTest, VitBaseMatchesThePublishedFigure) {
  MaeFlops flops = MaeFlopsPerImage(MaeVitBasePatch16());
  // About 58.6 GFLOP per image per training step; the decoder is more than half the forward.
  EXPECT_NEAR(flops.training_step() / 1e9, 58.6, 0.3);
  EXPECT_GT(flops.decoder_forward, flops.encoder_forward);
}

}  // namespace
}  // namespace maestro::model
