// JPEG decoding against Pillow (fixtures from tests/python/jpeg_fixture.py): full decodes of
// baseline 4:2:0 and 4:4:4, progressive, grayscale and CMYK files; DCT-scaled decoding against
// Pillow's draft mode; region decodes equal to the full decode cropped; damaged files refused.
#include "maestro/dataloader/jpeg.h"

#include <gtest/gtest.h>

#include "fixture_util.h"
#include "maestro/dataloader/transform.h"

namespace maestro::dataloader {
namespace {

using maestro::testing::LoadFixture;

std::string Bytes(const torch::Tensor& t) {
  return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()),
                     static_cast<size_t>(t.numel()));
}

torch::Tensor AsTensor(const RawSample& s) {
  return torch::from_blob(const_cast<uint8_t*>(s.pixels.data()), {s.height, s.width, s.channels},
                          torch::kUInt8)
      .to(torch::kInt32);
}

int64_t MaxDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kInt32) - b.to(torch::kInt32)).abs().max().item<int64_t>();
}

const std::map<std::string, torch::Tensor>& Fixture() {
  static const auto fixture = LoadFixture("jpeg_fixture.safetensors");
  return fixture;
}

TEST(JpegTest, FullDecodesMatchPillow) {
  for (const std::string name : {"q90_420", "q96_444", "progressive", "gray", "cmyk"}) {
    const std::string file = Bytes(Fixture().at(name + ".file"));
    auto info = ReadJpegHeader(file);
    ASSERT_TRUE(info.ok()) << name << ": " << info.status().ToString();
    EXPECT_EQ(info->width, 301);
    EXPECT_EQ(info->height, 203);
    EXPECT_EQ(info->progressive, name == "progressive") << name;
    auto decoded = DecodeJpegRegion(file, {0, 0, 203, 301});
    ASSERT_TRUE(decoded.ok()) << name << ": " << decoded.status().ToString();
    ASSERT_EQ(decoded->channels, 3);
    const auto& expected = Fixture().at(name + ".decoded");
    ASSERT_EQ(AsTensor(*decoded).sizes(), expected.sizes()) << name;
    // The same libjpeg-turbo arithmetic (islow IDCT, fancy upsampling) as Pillow's.
    EXPECT_EQ(MaxDiff(AsTensor(*decoded), expected), 0) << name;
  }
}

TEST(JpegTest, DctScaledDecodeMatchesPillowDraft) {
  const std::string file = Bytes(Fixture().at("q90_420.file"));
  auto quarter = DecodeJpegRegion(file, {0, 0, 203, 301}, 4);
  ASSERT_TRUE(quarter.ok()) << quarter.status().ToString();
  const auto& expected = Fixture().at("q90_420.quarter");
  ASSERT_EQ(AsTensor(*quarter).sizes(), expected.sizes());
  EXPECT_EQ(MaxDiff(AsTensor(*quarter), expected), 0);
}

TEST(JpegTest, RegionDecodesEqualTheFullDecodeCropped) {
  for (const std::string name : {"q90_420", "q96_444", "progressive", "gray", "cmyk"}) {
    const std::string file = Bytes(Fixture().at(name + ".file"));
    for (int scale : {1, 2, 4}) {
      auto full = DecodeJpegRegion(file, {0, 0, 203, 301}, scale);
      ASSERT_TRUE(full.ok());
      auto whole = AsTensor(*full);
      for (const CropBox box :
           {CropBox{37, 53, 120, 141}, CropBox{0, 150, 203, 151}, CropBox{101, 0, 102, 77},
            CropBox{9, 17, 31, 29}, CropBox{32, 48, 64, 96}}) {  // iMCU-aligned edges
        auto region = DecodeJpegRegion(file, box, scale);
        ASSERT_TRUE(region.ok()) << region.status().ToString();
        const int64_t top = box.top / scale, left = box.left / scale;
        const int64_t bottom =
            std::min<int64_t>(whole.size(0), (box.top + box.height + scale - 1) / scale);
        const int64_t right =
            std::min<int64_t>(whole.size(1), (box.left + box.width + scale - 1) / scale);
        auto expected = whole.slice(0, top, bottom).slice(1, left, right);
        ASSERT_EQ(AsTensor(*region).sizes(), expected.sizes()) << name << " scale " << scale;
        EXPECT_EQ(MaxDiff(AsTensor(*region), expected), 0)
            << name << " scale " << scale << " box " << box.top << "," << box.left;
      }
    }
  }
}

TEST(JpegTest, DamagedFilesAreRefused) {
  const std::string file = Bytes(Fixture().at("q90_420.file"));
  EXPECT_EQ(DecodeJpegRegion("\x89PNG\r\n", {0, 0, 1, 1}).status().code(),
            StatusCode::kInvalidArgument);
  std::string garbage = file.substr(0, 20) + std::string(400, '\x55');
  EXPECT_EQ(DecodeJpegRegion(garbage, {0, 0, 10, 10}).status().code(), StatusCode::kDataLoss);
  // Truncated in the middle of the scan: the rows it no longer has are an error...
  const std::string truncated = file.substr(0, file.size() / 2);
  auto cut = DecodeJpegRegion(truncated, {0, 0, 203, 301});
  EXPECT_EQ(cut.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(cut.status().message().find("corrupt data"), std::string::npos);
  // ...while a crop from the intact top part decodes (decoding stops after its last row).
  EXPECT_TRUE(DecodeJpegRegion(truncated, {0, 0, 16, 301}).ok());
  EXPECT_EQ(DecodeJpegRegion(file, {300, 0, 10, 10}).status().code(), StatusCode::kInvalidArgument);
}

TEST(JpegTest, AugmentingTheEncodedSampleEqualsAugmentingTheDecodedOne) {
  const std::string file = Bytes(Fixture().at("q90_420.file"));
  auto full = DecodeJpegRegion(file, {0, 0, 203, 301});
  ASSERT_TRUE(full.ok());
  AugmentOptions options;
  options.output_size = 224;  // every crop of this image is smaller: full-scale region decodes
  options.scale_min = 0.08;
  options.randaug.num_ops = 2;
  options.randaug.fill = {124, 116, 104};
  for (int64_t index = 0; index < 24; ++index) {
    EncodedSample encoded{index, 3, 203, 301, file};
    RawSample decoded = *full;
    decoded.index = index;
    auto a = AugmentEncoded(encoded, options, 7, 2);
    auto b = AugmentSample(decoded, options, 7, 2);
    ASSERT_TRUE(torch::equal(a, b)) << "sample " << index;
  }
  // A small output lets the crops decode at 1/2 .. 1/8 scale: close to, not equal to, the
  // full-scale path (DCT scaling is a different low-pass than the bicubic antialias).
  options.output_size = 24;
  options.randaug.num_ops = 0;
  options.horizontal_flip = false;
  int scaled = 0;
  double mean_diff = 0;
  for (int64_t index = 0; index < 24; ++index) {
    const CropBox box = SampleCrop(203, 301, options, AugmentKey(7, 2, index));
    scaled += ChooseDctScale(box, 24) > 1;
    EncodedSample encoded{index, 3, 203, 301, file};
    RawSample decoded = *full;
    decoded.index = index;
    auto diff = (AugmentEncoded(encoded, options, 7, 2).to(torch::kFloat32) -
                 AugmentSample(decoded, options, 7, 2).to(torch::kFloat32))
                    .abs();
    EXPECT_LT(diff.mean().item<float>(), 6.5f) << "sample " << index;  // of 255, noisy image
    mean_diff += diff.mean().item<double>() / 24.0;
  }
  EXPECT_GT(scaled, 12);
  EXPECT_LT(mean_diff, 4.0);  // measured 3.2
  // A corrupt JPEG is DATA_LOSS (the loader replaces the sample and reports it).
  EncodedSample broken{0, 0, 203, 301, file.substr(0, 600)};
  try {
    (void)AugmentEncoded(broken, options, 7, 2);
    FAIL() << "a truncated JPEG augmented without error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status().code(), StatusCode::kDataLoss);
  }
}

TEST(JpegTest, DctScaleKeepsTheCropAtLeastTheOutputSize) {
  EXPECT_EQ(ChooseDctScale({0, 0, 375, 500}, 224), 1);
  EXPECT_EQ(ChooseDctScale({0, 0, 448, 500}, 224), 2);
  EXPECT_EQ(ChooseDctScale({0, 0, 1000, 1800}, 224), 4);
  EXPECT_EQ(ChooseDctScale({0, 0, 2000, 1800}, 224), 8);
  EXPECT_EQ(ChooseDctScale({0, 0, 100, 100}, 224), 1);
}

}  // namespace
}  // namespace maestro::dataloader
