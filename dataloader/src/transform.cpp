#include "maestro/dataloader/transform.h"

#include <cmath>

#include "maestro/shared/rng.h"
#ifdef MAESTRO_HAVE_JPEG
#include "maestro/dataloader/jpeg.h"
#endif

namespace maestro::dataloader {
namespace {

constexpr uint64_t kAugmentPurpose = 0x4155474DULL;  // "AUGM"
constexpr uint64_t kMaskPurpose = 0x4D41534BULL;     // "MASK"

}  // namespace

uint64_t AugmentKey(uint64_t seed, int64_t epoch, int64_t index) {
  return HashKey(
      {seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index), kAugmentPurpose});
}

uint64_t MaskNoiseKey(uint64_t seed, int64_t epoch, int64_t index) {
  return HashKey({seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index), kMaskPurpose});
}

CropBox SampleCrop(int64_t height, int64_t width, const AugmentOptions& o, uint64_t key) {
  CounterRng rng(key);
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(o.ratio_min), log_hi = std::log(o.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target_area = area * rng.Uniform(o.scale_min, o.scale_max);
    double aspect = std::exp(rng.Uniform(log_lo, log_hi));
    auto w = static_cast<int64_t>(std::lround(std::sqrt(target_area * aspect)));
    auto h = static_cast<int64_t>(std::lround(std::sqrt(target_area / aspect)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      auto top = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(height - h + 1)));
      auto left = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  // Fallback: the whole image, cut to the ratio range, centered.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < o.ratio_min) {
    h = static_cast<int64_t>(std::lround(static_cast<double>(w) / o.ratio_min));
  } else if (in_ratio > o.ratio_max) {
    w = static_cast<int64_t>(std::lround(static_cast<double>(h) * o.ratio_max));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

namespace {

torch::Tensor ToChwFloat(const RawSample& sample) {
  auto hwc = torch::from_blob(const_cast<uint8_t*>(sample.pixels.data()),
                              {sample.height, sample.width, sample.channels}, torch::kUInt8);
  return hwc.permute({2, 0, 1}).to(torch::kFloat32);  // (C, H, W), a copy
}

// (C, h, w) float -> (C, out_h, out_w) uint8, bicubic, antialiased when shrinking.
torch::Tensor ResizeToUint8(const torch::Tensor& chw, int64_t out_h, int64_t out_w) {
  auto resized = torch::nn::functional::interpolate(chw.unsqueeze(0),
                                                    torch::nn::functional::InterpolateFuncOptions()
                                                        .size(std::vector<int64_t>{out_h, out_w})
                                                        .mode(torch::kBicubic)
                                                        .align_corners(false)
                                                        .antialias(true));
  return resized.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

// Resize of the cropped (C, h, w) float region to the output size, then flip and RandAugment,
// with the draws of `key`.
torch::Tensor FinishAugment(const torch::Tensor& crop, const AugmentOptions& o, uint64_t key) {
  auto out = ResizeToUint8(crop, o.output_size, o.output_size);
  if (o.horizontal_flip) {
    // A separate draw from the crop's: the crop uses a variable number of them.
    CounterRng flip_rng(HashKey({key, 0x464C4950ULL}));  // "FLIP"
    if (flip_rng.Uniform() < 0.5) out = out.flip({2});
  }
  if (o.randaug.num_ops > 0) {
    RawSample image;
    image.height = o.output_size;
    image.width = o.output_size;
    image.channels = out.size(0);
    auto hwc = out.permute({1, 2, 0}).contiguous();
    image.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
    RandAugment(image, o.randaug, HashKey({key, 0x52414E44ULL}));  // "RAND"
    // clone(): with one channel the permuted view is already contiguous and would alias
    // `image`, which ends here.
    return torch::from_blob(image.pixels.data(), {image.height, image.width, image.channels},
                            torch::kUInt8)
        .permute({2, 0, 1})
        .clone(at::MemoryFormat::Contiguous);
  }
  return out.contiguous();
}

}  // namespace

torch::Tensor AugmentSample(const RawSample& sample, const AugmentOptions& o, uint64_t seed,
                            int64_t epoch) {
  auto chw = ToChwFloat(sample);
  const uint64_t key = AugmentKey(seed, epoch, sample.index);
  CropBox box{0, 0, sample.height, sample.width};
  if (o.random_crop) box = SampleCrop(sample.height, sample.width, o, key);
  auto crop = chw.slice(1, box.top, box.top + box.height).slice(2, box.left, box.left + box.width);
  return FinishAugment(crop, o, key);
}

torch::Tensor AugmentEncoded(const EncodedSample& sample, const AugmentOptions& o, uint64_t seed,
                             int64_t epoch) {
#ifdef MAESTRO_HAVE_JPEG
  const uint64_t key = AugmentKey(seed, epoch, sample.index);
  CropBox box{0, 0, sample.height, sample.width};
  if (o.random_crop) box = SampleCrop(sample.height, sample.width, o, key);
  const int scale = ChooseDctScale(box, o.output_size);
  auto region = DecodeJpegRegion(sample.jpeg, box, scale);
  if (!region.ok()) {
    throw Error(
        DataLossError("sample " + std::to_string(sample.index) + ": " + region.status().message()));
  }
  auto chw = ToChwFloat(*region);
  if (scale > 1) {
    // The region rounds outward to whole scaled pixels; cut it to the box's edges rounded to
    // the nearest scaled pixel instead (at most half a scaled pixel off).
    auto edge = [scale](int64_t v) { return (2 * v + scale) / (2 * scale); };  // round(v / s)
    const int64_t y0 = edge(box.top) - box.top / scale, x0 = edge(box.left) - box.left / scale;
    const int64_t y1 = std::min(chw.size(1), edge(box.top + box.height) - box.top / scale);
    const int64_t x1 = std::min(chw.size(2), edge(box.left + box.width) - box.left / scale);
    if (y1 > y0 && x1 > x0) chw = chw.slice(1, y0, y1).slice(2, x0, x1);
  }
  return FinishAugment(chw, o, key);
#else
  (void)o, (void)seed, (void)epoch;
  throw Error(FailedPreconditionError("sample " + std::to_string(sample.index) +
                                      " is a JPEG and this build has no libjpeg"));
#endif
}

torch::Tensor EvalTransform(const RawSample& sample, int64_t size, double crop_pct) {
  const auto target = static_cast<int64_t>(static_cast<double>(size) / crop_pct);
  const int64_t h = sample.height, w = sample.width;
  int64_t out_h = target, out_w = target;
  if (h < w) {
    out_w = target * w / h;
  } else if (w < h) {
    out_h = target * h / w;
  }
  torch::Tensor resized = (out_h == h && out_w == w)
                              ? ToChwFloat(sample).to(torch::kUInt8)
                              : ResizeToUint8(ToChwFloat(sample), out_h, out_w);
  const auto top = static_cast<int64_t>(std::lround(static_cast<double>(out_h - size) / 2.0));
  const auto left = static_cast<int64_t>(std::lround(static_cast<double>(out_w - size) / 2.0));
  return resized.slice(1, top, top + size).slice(2, left, left + size).contiguous();
}

torch::Tensor MaskNoise(int64_t num_patches, uint64_t seed, int64_t epoch, int64_t index) {
  CounterRng rng(MaskNoiseKey(seed, epoch, index));
  auto noise = torch::empty({num_patches}, torch::kFloat32);
  float* p = noise.data_ptr<float>();
  for (int64_t i = 0; i < num_patches; ++i) p[i] = rng.UniformFloat();
  return noise;
}

}  // namespace maestro::dataloader
