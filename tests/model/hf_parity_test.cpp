// Parity with an implementation nobody here wrote: Hugging Face ViTMAEForPreTraining.
// tests/python/hf_vit_mae_fixture.py saves its weights, inputs, outputs and gradients; this test
// imports the weights through checkpoint/hf_vit_mae.h and compares.
#include <gtest/gtest.h>

#include <cstdlib>

#include "maestro/checkpoint/hf_vit_mae.h"
#include "maestro/checkpoint/torch_bridge.h"
#include "maestro/model/mae.h"
#include "maestro/model/pos_embed.h"

namespace maestro::model {
namespace {

// Keep in step with CONFIG in hf_vit_mae_fixture.py.
MaeOptions ParityOptions(bool norm_pix_loss) {
  MaeOptions o;
  o.img_size = 32;
  o.patch_size = 4;
  o.in_chans = 3;
  o.embed_dim = 64;
  o.depth = 2;
  o.num_heads = 4;
  o.decoder_embed_dim = 32;
  o.decoder_depth = 2;
  o.decoder_num_heads = 4;
  o.mlp_ratio = 4.0;
  o.layer_norm_eps = 1e-6;
  o.mask_ratio = 0.75;
  o.norm_pix_loss = norm_pix_loss;
  return o;
}

std::string FixturePath(const std::string& name) {
  const char* dir = std::getenv("MAESTRO_FIXTURE_DIR");
  return std::string(dir ? dir : "fixtures") + "/" + name;
}

std::map<std::string, torch::Tensor> LoadTorch(const std::string& name, bool import_hf) {
  auto content = checkpoint::ReadSafetensors(FixturePath(name));
  if (!content.ok()) throw Error(content.status());
  checkpoint::TensorMap tensors = content->tensors;
  if (import_hf) tensors = checkpoint::ImportHfVitMae(tensors).value();
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key, tensor] : tensors) out[key] = checkpoint::ToTorch(tensor);
  return out;
}

double RelativeError(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).norm() / want.norm()).item<double>();
}

class HfParityTest : public ::testing::TestWithParam<bool> {};

TEST_P(HfParityTest, MatchesViTMAEForPreTraining) {
  const bool norm_pix_loss = GetParam();
  const std::string tag = norm_pix_loss ? "normpix" : "pixels";
  torch::manual_seed(0);
  MaskedAutoencoderViT model(ParityOptions(norm_pix_loss));

  auto weights = checkpoint::ReadSafetensors(FixturePath("hf_" + tag + "_weights.safetensors"));
  ASSERT_TRUE(weights.ok()) << weights.status().ToString()
                            << " (run the hf_vit_mae_fixture test first)";
  auto imported = checkpoint::ImportHfVitMae(weights->tensors);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  // Our own sin-cos tables equal Hugging Face's before the import overwrites them.
  EXPECT_TRUE(torch::allclose(model->named_parameters()["pos_embed"],
                              checkpoint::ToTorch(imported->at("pos_embed")), 0, 1e-6));
  EXPECT_TRUE(torch::allclose(model->named_parameters()["decoder_pos_embed"],
                              checkpoint::ToTorch(imported->at("decoder_pos_embed")), 0, 1e-6));
  auto status = checkpoint::LoadStateDict(*model, *imported);
  ASSERT_TRUE(status.ok()) << status.ToString();

  auto io = LoadTorch("hf_" + tag + "_io.safetensors", /*import_hf=*/false);
  auto out = model->forward(io.at("pixel_values"), io.at("noise"));

  EXPECT_TRUE(torch::equal(out.mask, io.at("mask")));
  EXPECT_TRUE(torch::equal(out.ids_restore, io.at("ids_restore")));
  const double logits_abs = (out.pred - io.at("logits")).abs().max().item<double>();
  EXPECT_LE(logits_abs, 1e-5) << "logits max abs diff";
  const double loss_rel = std::abs(out.loss.item<double>() - io.at("loss")[0].item<double>()) /
                          std::abs(io.at("loss")[0].item<double>());
  EXPECT_LE(loss_rel, 1e-6) << "loss relative diff";

  out.loss.backward();
  auto hf_grads = LoadTorch("hf_" + tag + "_grads.safetensors", /*import_hf=*/true);
  auto params = model->named_parameters();
  int checked = 0;
  double worst = 0;
  std::string worst_name;
  for (const auto& [name, want] : hf_grads) {
    ASSERT_TRUE(params.contains(name)) << name;
    const auto& grad = params[name].grad();
    ASSERT_TRUE(grad.defined()) << name << " has no gradient";
    double rel = RelativeError(grad, want);
    if (rel > worst) {
      worst = rel;
      worst_name = name;
    }
    ++checked;
  }
  // Every trainable parameter: the patch embedding, each encoder and decoder block, the head.
  EXPECT_EQ(checked, model->num_trainable_parameters() > 0
                         ? static_cast<int>(std::count_if(
                               params.begin(), params.end(),
                               [](const auto& item) { return item.value().requires_grad(); }))
                         : 0);
  for (const char* name :
       {"patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "blocks.1.mlp.fc1.weight",
        "blocks.1.norm1.weight", "decoder_pred.weight", "decoder_pred.bias"}) {
    ASSERT_TRUE(hf_grads.count(name)) << name;
    EXPECT_LE(RelativeError(params[name].grad(), hf_grads.at(name)), 1e-4) << name;
  }
  EXPECT_LE(worst, 1e-4) << "worst gradient: " << worst_name;
  std::cout << "[ parity " << tag << " ] logits max abs diff " << logits_abs << ", loss rel diff "
            << loss_rel << ", worst grad rel diff " << worst << " (" << worst_name << ", "
            << checked << " tensors)\n";
}

INSTANTIATE_TEST_SUITE_P(NormPixLoss, HfParityTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "normpix" : "pixels"; });

}  // namespace
}  // namespace maestro::model
