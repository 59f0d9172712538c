// The bicubic resize (resize.h) against Pillow through torchvision's F.resized_crop, on crops
// of real photographs (resize_fixture.py): RGB and grayscale, shrinking and enlarging, with the
// flip folded in. The bar is "within 1"; Pillow's arithmetic is reproduced, so every
// pixel is expected equal.
#include "maestro/dataloader/resize.h"

#include <gtest/gtest.h>

#include "fixture_util.h"
#include "maestro/dataloader/transform.h"

namespace maestro::dataloader {
namespace {

// "p<k><suffix>", built by appending (GCC 12's -Wrestrict misfires on chained operator+).
std::string Key(int k, const char* suffix) {
  std::string key = "p";
  key.append(std::to_string(k));
  key.append(suffix);
  return key;
}

TEST(ResizeTest, CropsOfPhotographsEqualTorchvisionOnPil) {
  const auto fixture = maestro::testing::LoadFixture("resize_fixture.safetensors");
  BicubicResizer resizer;
  int64_t compared = 0, differing = 0, max_difference = 0;
  for (int k = 0; fixture.count(Key(k, ".pixels")) > 0; ++k) {
    const auto pixels = fixture.at(Key(k, ".pixels")).contiguous();
    const auto boxes = fixture.at(Key(k, ".boxes"));
    const int64_t width = pixels.size(1), channels = pixels.size(2);
    for (int64_t b = 0; b < boxes.size(0); ++b) {
      const int64_t top = boxes[b][0].item<int64_t>(), left = boxes[b][1].item<int64_t>();
      const int64_t h = boxes[b][2].item<int64_t>(), w = boxes[b][3].item<int64_t>();
      for (bool flip : {false, true}) {
        SCOPED_TRACE(Key(k, flip ? " flipped, box " : ", box ") + std::to_string(b));
        const auto expected = fixture.at(Key(k, flip ? ".flipped" : ".out"))[b].contiguous();
        auto out = torch::empty({224, 224, channels}, torch::kUInt8);
        // As torchvision: the crop is an image of its own, resized whole.
        const uint8_t* origin = pixels.data_ptr<uint8_t>() + (top * width + left) * channels;
        resizer.Resize(origin, h, w, channels, width * channels,
                       {0, 0, static_cast<double>(w), static_cast<double>(h)}, 224, 224, flip,
                       out.data_ptr<uint8_t>());
        auto diff = (out.to(torch::kInt32) - expected.to(torch::kInt32)).abs();
        max_difference = std::max(max_difference, diff.max().item<int64_t>());
        differing += diff.gt(0).sum().item<int64_t>();
        compared += diff.numel();
        ASSERT_LE(diff.max().item<int64_t>(), 1);
      }
    }
  }
  EXPECT_GT(compared, 1000000);
  EXPECT_EQ(differing, 0) << "of " << compared << " values; largest difference " << max_difference;
}

TEST(ResizeTest, AugmentSampleResizesItsCropAsTorchvisionDoes) {
  // AugmentSample = SampleCrop's box, then this resize (the flip drawn separately): its output
  // for a whole-image "crop" equals the fixture's last box, whole image, unflipped.
  const auto fixture = maestro::testing::LoadFixture("resize_fixture.safetensors");
  const auto pixels = fixture.at("p0.pixels").contiguous();
  RawSample sample;
  sample.height = pixels.size(0);
  sample.width = pixels.size(1);
  sample.channels = pixels.size(2);
  sample.pixels.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
  AugmentOptions o;
  o.random_crop = false;
  o.horizontal_flip = false;
  const auto chw = AugmentSample(sample, o, 0, 0);
  const auto expected = fixture.at("p0.out")[fixture.at("p0.boxes").size(0) - 1];
  EXPECT_TRUE(torch::equal(chw.permute({1, 2, 0}), expected));
}

}  // namespace
}  // namespace maestro::dataloader
