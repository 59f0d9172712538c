#include "maestro/dataloader/transform.h"

#include <cmath>
#include <cstring>

#include "maestro/dataloader/resize.h"
#include "maestro/shared/rng.h"
#ifdef MAESTRO_HAVE_JPEG
#include "maestro/dataloader/jpeg.h"
#endif
#ifdef MAESTRO_HAVE_PNG
#include "maestro/dataloader/png.h"
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

// `box` of the HWC image `src` resized to the output size (Pillow's bicubic, the flip folded
// in), then RandAugment, with the draws of `key`: (C, S, S) uint8, a view of channels-last
// pixels (the batch's stack makes it contiguous: one copy). The resize and RandAugment
// buffers are per thread and reused.
torch::Tensor FinishAugment(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                            int64_t stride, const ResizeBox& box, const AugmentOptions& o,
                            uint64_t key) {
  bool flip = false;
  if (o.horizontal_flip) {
    // A separate draw from the crop's: the crop uses a variable number of them.
    CounterRng flip_rng(HashKey({key, 0x464C4950ULL}));  // "FLIP"
    flip = flip_rng.Uniform() < 0.5;
  }
  thread_local BicubicResizer resizer;
  const int64_t size = o.output_size;
  auto out = torch::empty({size, size, channels}, torch::kUInt8);
  resizer.Resize(src, height, width, channels, stride, box, size, size, flip,
                 out.data_ptr<uint8_t>());
  if (o.randaug.num_ops > 0) {
    thread_local RawSample image;
    image.height = size;
    image.width = size;
    image.channels = channels;
    image.pixels.assign(out.data_ptr<uint8_t>(), out.data_ptr<uint8_t>() + out.numel());
    RandAugment(image, o.randaug, HashKey({key, 0x52414E44ULL}));  // "RAND"
    std::memcpy(out.data_ptr<uint8_t>(), image.pixels.data(), image.pixels.size());
  }
  return out.permute({2, 0, 1});  // (C, S, S), channels-last in memory
}

}  // namespace

torch::Tensor AugmentSample(const RawSample& sample, const AugmentOptions& o, uint64_t seed,
                            int64_t epoch) {
  const uint64_t key = AugmentKey(seed, epoch, sample.index);
  CropBox box{0, 0, sample.height, sample.width};
  if (o.random_crop) box = SampleCrop(sample.height, sample.width, o, key);
  // As torchvision: crop, then resize the crop as an image of its own.
  const int64_t stride = sample.width * sample.channels;
  const uint8_t* origin = sample.pixels.data() + box.top * stride + box.left * sample.channels;
  const ResizeBox whole{0, 0, static_cast<double>(box.width), static_cast<double>(box.height)};
  return FinishAugment(origin, box.height, box.width, sample.channels, stride, whole, o, key);
}

torch::Tensor AugmentEncoded(const EncodedSample& sample, const AugmentOptions& o, uint64_t seed,
                             int64_t epoch) {
#ifdef MAESTRO_HAVE_PNG
  if (LooksLikePng(sample.bytes)) {  // no region decoding for PNG: the whole image
    auto decoded = DecodePng(sample.bytes);
    if (!decoded.ok()) {
      throw Error(DataLossError("sample " + std::to_string(sample.index) + ": " +
                                decoded.status().message()));
    }
    decoded->index = sample.index;
    decoded->label = sample.label;
    return AugmentSample(*decoded, o, seed, epoch);
  }
#endif
#ifdef MAESTRO_HAVE_JPEG
  const uint64_t key = AugmentKey(seed, epoch, sample.index);
  CropBox box{0, 0, sample.height, sample.width};
  if (o.random_crop) box = SampleCrop(sample.height, sample.width, o, key);
  const int scale = ChooseDctScale(box, o.output_size);
  thread_local JpegSpan region;
  if (Status decoded = DecodeJpegSpan(sample.bytes, box, scale, region); !decoded.ok()) {
    throw Error(DataLossError("sample " + std::to_string(sample.index) + ": " + decoded.message()));
  }
  // At scale 1 the region is the box. Scaled, it rounds outward to whole scaled pixels: the box
  // is a fractional one inside it (Pillow's resize box).
  const double s = scale;
  const double x0 = static_cast<double>(box.left) / s - static_cast<double>(box.left / scale);
  const double y0 = static_cast<double>(box.top) / s - static_cast<double>(box.top / scale);
  const ResizeBox inside{
      x0, y0, std::min(static_cast<double>(region.width), x0 + static_cast<double>(box.width) / s),
      std::min(static_cast<double>(region.height), y0 + static_cast<double>(box.height) / s)};
  return FinishAugment(region.pixels.data() + region.x_offset * 3, region.height, region.width, 3,
                       region.stride, inside, o, key);
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
  thread_local BicubicResizer resizer;
  auto resized = torch::empty({out_h, out_w, sample.channels}, torch::kUInt8);  // HWC
  resizer.Resize(sample.pixels.data(), h, w, sample.channels, w * sample.channels,
                 {0, 0, static_cast<double>(w), static_cast<double>(h)}, out_h, out_w, false,
                 resized.data_ptr<uint8_t>());
  const auto top = static_cast<int64_t>(std::lround(static_cast<double>(out_h - size) / 2.0));
  const auto left = static_cast<int64_t>(std::lround(static_cast<double>(out_w - size) / 2.0));
  return resized.slice(0, top, top + size)
      .slice(1, left, left + size)
      .permute({2, 0, 1})
      .contiguous();
}

torch::Tensor MaskNoise(int64_t num_patches, uint64_t seed, int64_t epoch, int64_t index) {
  CounterRng rng(MaskNoiseKey(seed, epoch, index));
  auto noise = torch::empty({num_patches}, torch::kFloat32);
  float* p = noise.data_ptr<float>();
  for (int64_t i = 0; i < num_patches; ++i) p[i] = rng.UniformFloat();
  return noise;
}

}  // namespace maestro::dataloader
