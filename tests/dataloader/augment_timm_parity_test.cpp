// The fine-tuning augmentations against timm (fixtures from tests/python/augment_fixture.py):
// every RandAugment operation at magnitude 9 in both directions, on an RGB and a grayscale
// image; Mixup and CutMix images and soft targets for a given lambda, mode and box; plus the
// properties of the counter-based draws (Beta lambdas, erasing boxes, the evaluation crop).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "fixture_util.h"
#include "maestro/dataloader/mixup.h"
#include "maestro/dataloader/rand_augment.h"
#include "maestro/dataloader/transform.h"
#include "maestro/shared/rng.h"

namespace maestro::dataloader {
namespace {

using maestro::testing::LoadFixture;

RawSample FromHwc(const torch::Tensor& hwc) {
  RawSample s;
  s.height = hwc.size(0);
  s.width = hwc.size(1);
  s.channels = hwc.size(2);
  auto c = hwc.contiguous();
  s.pixels.assign(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
  return s;
}

TEST(RandAugmentTimmParityTest, EveryOperationAtMagnitude9MatchesTimm) {
  auto fx = LoadFixture("augment_ops.safetensors");
  for (const std::string image_name : {"rgb", "gray"}) {
    const RawSample image = FromHwc(fx.at(image_name + ".image"));
    auto fill_tensor = fx.at(image_name + ".fill");
    std::vector<uint8_t> fill(fill_tensor.data_ptr<uint8_t>(),
                              fill_tensor.data_ptr<uint8_t>() + fill_tensor.numel());
    for (int op = 0; op < kNumAugmentOps; ++op) {
      for (const bool negate : {false, true}) {
        const std::string key = image_name + "." + AugmentOpName(static_cast<AugmentOp>(op)) +
                                (negate ? ".neg" : ".pos");
        RawSample ours = image;
        ApplyAugmentOp(ours, static_cast<AugmentOp>(op), 9.0, negate, fill);
        auto expected = fx.at(key).to(torch::kInt32).flatten();
        auto got = torch::tensor(std::vector<int32_t>(ours.pixels.begin(), ours.pixels.end()));
        ASSERT_EQ(got.numel(), expected.numel()) << key;
        auto diff = (got - expected).abs();
        // Bit-exact with Pillow 13.0 (the venv's pin), including its truncations and the
        // geometry cubic's a = -1.
        EXPECT_EQ(diff.max().item<int64_t>(), 0)
            << key << ": " << (diff > 0).sum().item<int64_t>() << " pixels differ";
        // The operation really changed something where timm's did.
        if (!torch::equal(fx.at(key).flatten(), fx.at(image_name + ".image").flatten())) {
          EXPECT_FALSE(ours.pixels == image.pixels) << key;
        }
      }
    }
  }
}

TEST(EvalTransformTest, MatchesTorchvisionResizeAndCenterCropWithinOneLevel) {
  auto fx = LoadFixture("augment_ops.safetensors");
  RawSample image = FromHwc(fx.at("eval.image"));
  auto ours = EvalTransform(image, 28, 0.875).permute({1, 2, 0}).to(torch::kInt32);
  auto expected = fx.at("eval.expected").to(torch::kInt32);
  ASSERT_EQ(ours.sizes(), expected.sizes());
  // LibTorch's antialiased bicubic in float against Pillow's fixed-point one.
  EXPECT_LE((ours - expected).abs().max().item<int64_t>(), 1);
}

TEST(MixupTimmParityTest, ImagesAndSoftTargetsEqualTimm) {
  auto fx = LoadFixture("mixup.safetensors");
  MixupOptions options;
  options.num_classes = 10;
  for (const std::string name : {"mixup", "cutmix", "cutmix_edge", "none"}) {
    auto params = fx.at(name + ".params");
    MixupDraw draw;
    draw.lambda = params[0].item<double>();
    draw.cutmix = params[1].item<double>() != 0;
    draw.center_y = static_cast<int64_t>(params[2].item<double>());
    draw.center_x = static_cast<int64_t>(params[3].item<double>());
    draw.mixed = draw.lambda != 1.0;
    auto images = fx.at("images").clone();
    auto targets = ApplyMixup(images, fx.at("labels"), draw, options);
    EXPECT_TRUE(torch::allclose(images, fx.at(name + ".images"), 0, 1e-6)) << name;
    EXPECT_TRUE(torch::allclose(targets, fx.at(name + ".targets"), 0, 1e-6)) << name;
  }
}

TEST(MixupTest, DrawsFollowTheConfiguredDistributions) {
  MixupOptions options;
  options.num_classes = 10;
  int cutmix = 0;
  double lambda_sum = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    MixupDraw d = SampleMixup(options, 28, 28, HashKey({7, static_cast<uint64_t>(i)}));
    ASSERT_TRUE(d.mixed);
    ASSERT_GT(d.lambda, 0.0);
    ASSERT_LT(d.lambda, 1.0);
    ASSERT_LT(d.center_y, 28);
    cutmix += d.cutmix;
    lambda_sum += d.lambda;
  }
  EXPECT_NEAR(static_cast<double>(cutmix) / n, 0.5, 0.03);  // switch_prob
  EXPECT_NEAR(lambda_sum / n, 0.5, 0.02);                   // Beta(a, a) has mean 1/2
  // Beta(0.8, 0.8) variance 1 / (4 (2a + 1)) = 0.0962.
  double m2 = 0;
  for (int i = 0; i < n; ++i) {
    const double l = SampleBeta(0.8, HashKey({9, static_cast<uint64_t>(i)}));
    m2 += (l - 0.5) * (l - 0.5);
  }
  EXPECT_NEAR(m2 / n, 1.0 / (4 * 2.6), 0.008);
  // Same key, same draw.
  MixupDraw a = SampleMixup(options, 28, 28, 42), b = SampleMixup(options, 28, 28, 42);
  EXPECT_EQ(a.lambda, b.lambda);
  EXPECT_EQ(a.center_x, b.center_x);
  options.prob = 0;
  EXPECT_FALSE(SampleMixup(options, 28, 28, 42).mixed);
}

TEST(RandomEraseTest, ErasesOneBoxOfTheRightSizeWithNormalNoise) {
  int erased = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    auto image = torch::full({3, 28, 28}, 100.0f);
    if (!RandomErase(image, 0.25, HashKey({3, static_cast<uint64_t>(i)}))) {
      ASSERT_TRUE(torch::all(image == 100.0f).item<bool>());
      continue;
    }
    ++erased;
    auto changed = (image != 100.0f).any(0);
    const double area = changed.sum().item<double>() / (28.0 * 28.0);
    EXPECT_GE(area, 0.015);
    EXPECT_LE(area, 0.36);
    auto noise = image.masked_select(changed.unsqueeze(0).expand_as(image));
    EXPECT_LT(noise.abs().max().item<float>(), 8.0f);  // N(0, 1) values, not the image
  }
  EXPECT_NEAR(static_cast<double>(erased) / n, 0.25, 0.03);
}

TEST(AugmentSampleTest, RandAugmentedGrayscaleOwnsItsPixels) {
  // A 1-channel result once aliased a buffer freed on return (the permute to CHW was already
  // contiguous, so no copy was made); memory reused afterwards changed the returned image.
  RawSample s;
  s.height = s.width = 28;
  s.channels = 1;
  s.pixels.resize(28 * 28);
  for (size_t i = 0; i < s.pixels.size(); ++i) s.pixels[i] = static_cast<uint8_t>(i * 7);
  AugmentOptions options;
  options.output_size = 28;
  options.randaug.num_ops = 2;
  options.randaug.prob = 1.0;
  options.randaug.fill = {73};
  for (int64_t index = 0; index < 20; ++index) {
    s.index = index;
    auto first = AugmentSample(s, options, 1, 0);
    auto copy = first.clone();
    std::vector<std::vector<uint8_t>> noise;
    for (int i = 0; i < 64; ++i) noise.emplace_back(28 * 28, static_cast<uint8_t>(0xA5 + i));
    ASSERT_TRUE(torch::equal(first, copy)) << "sample " << index;
    ASSERT_TRUE(torch::equal(first, AugmentSample(s, options, 1, 0))) << "sample " << index;
  }
}

TEST(EvalTransformTest, ResizesTheShortSideThenCropsTheCenter) {
  RawSample s;
  s.height = 40;
  s.width = 60;
  s.channels = 1;
  s.pixels.resize(40 * 60);
  for (int64_t y = 0; y < 40; ++y)
    for (int64_t x = 0; x < 60; ++x)
      s.pixels[static_cast<size_t>(y * 60 + x)] = static_cast<uint8_t>(x * 4);
  // crop_pct 1: short side 40 stays, 40 x 60 -> center 40 x 40 = columns 10..49.
  auto out = EvalTransform(s, 40, 1.0);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 40, 40}));
  EXPECT_EQ(out[0][0][0].item<int>(), 40);
  EXPECT_EQ(out[0][0][39].item<int>(), 196);
  // 28 px at 0.875: resize to 32 x 48, crop 28 x 28 at (2, 10).
  auto small = EvalTransform(s, 28, 0.875);
  ASSERT_EQ(small.sizes(), (std::vector<int64_t>{1, 28, 28}));
}

}  // namespace
}  // namespace maestro::dataloader
