#include "maestro/checkpoint/hf_vit_mae.h"

#include <gtest/gtest.h>

namespace maestro::checkpoint {
namespace {

Tensor U8(std::vector<int64_t> shape, char fill) {
  Tensor t;
  t.dtype = DType::kU8;
  t.shape = std::move(shape);
  t.bytes.assign(static_cast<size_t>(t.numel()), fill);
  return t;
}

TEST(HfVitMaeTest, FusesQueryKeyValueInOrder) {
  TensorMap hf;
  hf["vit.encoder.layer.3.attention.attention.query.weight"] = U8({2, 4}, 'q');
  hf["vit.encoder.layer.3.attention.attention.key.weight"] = U8({2, 4}, 'k');
  hf["vit.encoder.layer.3.attention.attention.value.weight"] = U8({2, 4}, 'v');
  hf["decoder.decoder_layers.0.attention.attention.query.bias"] = U8({2}, 'q');
  hf["decoder.decoder_layers.0.attention.attention.key.bias"] = U8({2}, 'k');
  hf["decoder.decoder_layers.0.attention.attention.value.bias"] = U8({2}, 'v');
  auto official = ImportHfVitMae(hf);
  ASSERT_TRUE(official.ok()) << official.status().ToString();
  const Tensor& qkv = official->at("blocks.3.attn.qkv.weight");
  EXPECT_EQ(qkv.shape, (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(qkv.bytes, std::string(8, 'q') + std::string(8, 'k') + std::string(8, 'v'));
  EXPECT_EQ(official->at("decoder_blocks.0.attn.qkv.bias").bytes, "qqkkvv");
}

TEST(HfVitMaeTest, MapsEveryNameAndRoundTrips) {
  TensorMap hf;
  const char* names[] = {"vit.embeddings.cls_token",
                         "vit.embeddings.position_embeddings",
                         "vit.embeddings.patch_embeddings.projection.weight",
                         "vit.layernorm.bias",
                         "vit.encoder.layer.0.layernorm_before.weight",
                         "vit.encoder.layer.0.attention.output.dense.bias",
                         "vit.encoder.layer.0.intermediate.dense.weight",
                         "vit.encoder.layer.0.output.dense.weight",
                         "vit.encoder.layer.0.layernorm_after.bias",
                         "decoder.decoder_embed.weight",
                         "decoder.mask_token",
                         "decoder.decoder_pos_embed",
                         "decoder.decoder_norm.weight",
                         "decoder.decoder_pred.bias",
                         "decoder.decoder_layers.7.output.dense.bias"};
  char fill = 'a';
  for (const char* name : names) hf[name] = U8({3}, fill++);
  for (const char* part : {"query", "key", "value"}) {
    hf[std::string("vit.encoder.layer.0.attention.attention.") + part + ".weight"] =
        U8({3, 2}, fill++);
  }
  auto official = ImportHfVitMae(hf);
  ASSERT_TRUE(official.ok()) << official.status().ToString();
  for (const char* want :
       {"cls_token", "pos_embed", "patch_embed.proj.weight", "norm.bias", "blocks.0.norm1.weight",
        "blocks.0.attn.proj.bias", "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight",
        "blocks.0.norm2.bias", "decoder_embed.weight", "mask_token", "decoder_pos_embed",
        "decoder_norm.weight", "decoder_pred.bias", "decoder_blocks.7.mlp.fc2.bias",
        "blocks.0.attn.qkv.weight"}) {
    EXPECT_TRUE(official->count(want)) << want;
  }
  EXPECT_EQ(official->size(), std::size(names) + 1);
  auto back = ExportHfVitMae(*official);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), hf.size());
  for (const auto& [name, tensor] : hf) {
    ASSERT_TRUE(back->count(name)) << name;
    EXPECT_EQ(back->at(name).bytes, tensor.bytes) << name;
    EXPECT_EQ(back->at(name).shape, tensor.shape) << name;
  }
}

TEST(HfVitMaeTest, AcceptsTheDecoderNameOfTransformers5SavePretrained) {
  TensorMap hf;
  hf["decoder.decoder_encoder.layer.1.output.dense.bias"] = U8({2}, 'o');
  for (const char* part : {"query", "key", "value"}) {
    hf[std::string("decoder.decoder_encoder.layer.1.attention.attention.") + part + ".bias"] = U8({2}, part[0]);
  }
  auto official = ImportHfVitMae(hf);
  ASSERT_TRUE(official.ok()) << official.status().ToString();
  EXPECT_EQ(official->at("decoder_blocks.1.mlp.fc2.bias").bytes, "oo");
  EXPECT_EQ(official->at("decoder_blocks.1.attn.qkv.bias").bytes, "qqkkvv");
}

TEST(HfVitMaeTest, AcceptsViTMAEModelKeysWithoutPrefix) {
  TensorMap hf;
  hf["embeddings.cls_token"] = U8({1}, 'c');
  hf["encoder.layer.1.layernorm_before.bias"] = U8({1}, 'n');
  auto official = ImportHfVitMae(hf);
  ASSERT_TRUE(official.ok()) << official.status().ToString();
  EXPECT_TRUE(official->count("cls_token"));
  EXPECT_TRUE(official->count("blocks.1.norm1.bias"));
}

TEST(HfVitMaeTest, ErrorsNameTheKey) {
  TensorMap unknown;
  unknown["vit.pooler.dense.weight"] = U8({1}, 'x');
  auto r = ImportHfVitMae(unknown);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("vit.pooler.dense.weight"), std::string::npos);

  TensorMap partial;
  partial["vit.encoder.layer.0.attention.attention.query.weight"] = U8({2, 2}, 'q');
  partial["vit.encoder.layer.0.attention.attention.value.weight"] = U8({2, 2}, 'v');
  r = ImportHfVitMae(partial);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("key"), std::string::npos);

  TensorMap mismatched;
  mismatched["vit.encoder.layer.0.attention.attention.query.weight"] = U8({2, 2}, 'q');
  mismatched["vit.encoder.layer.0.attention.attention.key.weight"] = U8({2, 3}, 'k');
  mismatched["vit.encoder.layer.0.attention.attention.value.weight"] = U8({2, 2}, 'v');
  EXPECT_FALSE(ImportHfVitMae(mismatched).ok());

  TensorMap ours;
  ours["encoder_mask_token"] = U8({1}, 'm');
  auto exported = ExportHfVitMae(ours);
  ASSERT_FALSE(exported.ok());
  EXPECT_NE(exported.status().message().find("encoder_mask_token"), std::string::npos);
}

}  // namespace
}  // namespace maestro::checkpoint

namespace maestro::checkpoint {
namespace {

TEST(HfVitMaeTest, Transformers5LayoutImportsAndRoundTrips) {
  TensorMap hf;
  char fill = 'a';
  for (const char* name :
       {"vit.layers.2.layernorm_before.weight", "vit.layers.2.attention.o_proj.bias",
        "vit.layers.2.mlp.fc1.weight", "vit.layers.2.mlp.fc2.bias",
        "decoder.decoder_layers.1.attention.o_proj.weight",
        "decoder.decoder_layers.1.mlp.fc2.weight", "vit.embeddings.cls_token"}) {
    hf[name] = U8({3}, fill++);
  }
  for (const char* part : {"q_proj", "k_proj", "v_proj"}) {
    hf[std::string("vit.layers.2.attention.") + part + ".bias"] = U8({2}, fill++);
  }
  auto official = ImportHfVitMae(hf);
  ASSERT_TRUE(official.ok()) << official.status().ToString();
  for (const char* want :
       {"blocks.2.norm1.weight", "blocks.2.attn.proj.bias", "blocks.2.mlp.fc1.weight",
        "blocks.2.mlp.fc2.bias", "decoder_blocks.1.attn.proj.weight",
        "decoder_blocks.1.mlp.fc2.weight", "blocks.2.attn.qkv.bias"}) {
    EXPECT_TRUE(official->count(want)) << want;
  }
  EXPECT_EQ(official->at("blocks.2.attn.qkv.bias").bytes, "hhiijj");
  auto back = ExportHfVitMae(*official, HfLayout::kTransformers5);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), hf.size());
  for (const auto& [name, tensor] : hf) {
    ASSERT_TRUE(back->count(name)) << name;
    EXPECT_EQ(back->at(name).bytes, tensor.bytes) << name;
  }
  // The hub layout of the same tensors.
  auto hub = ExportHfVitMae(*official, HfLayout::kHub);
  ASSERT_TRUE(hub.ok());
  EXPECT_TRUE(hub->count("vit.encoder.layer.2.attention.attention.value.bias"));
  EXPECT_TRUE(hub->count("vit.encoder.layer.2.intermediate.dense.weight"));
  EXPECT_TRUE(hub->count("decoder.decoder_layers.1.output.dense.weight"));
}

}  // namespace
}  // namespace maestro::checkpoint
