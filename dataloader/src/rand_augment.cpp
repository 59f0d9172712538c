#include "maestro/dataloader/rand_augment.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "maestro/shared/rng.h"

namespace maestro::dataloader {
namespace {

constexpr double kLevelDenominator = 10.0;  // timm's _LEVEL_DENOM
constexpr double kPi = 3.14159265358979323846;

using Lut = std::array<uint8_t, 256>;

void ApplyLut(RawSample& image, int64_t channel, const Lut& lut) {
  const int64_t c = image.channels;
  for (size_t i = static_cast<size_t>(channel); i < image.pixels.size();
       i += static_cast<size_t>(c))
    image.pixels[i] = lut[image.pixels[i]];
}

std::array<int64_t, 256> Histogram(const RawSample& image, int64_t channel) {
  std::array<int64_t, 256> h{};
  const int64_t c = image.channels;
  for (size_t i = static_cast<size_t>(channel); i < image.pixels.size();
       i += static_cast<size_t>(c))
    ++h[image.pixels[i]];
  return h;
}

uint8_t Clip8(double v) { return v <= 0 ? 0 : v >= 255 ? 255 : static_cast<uint8_t>(v); }

// ImageOps.autocontrast(cutoff=0): each band stretched so its lowest value maps to 0 and its
// highest to 255.
void AutoContrast(RawSample& image) {
  for (int64_t ch = 0; ch < image.channels; ++ch) {
    auto h = Histogram(image, ch);
    int lo = 0, hi = 255;
    while (lo < 256 && h[lo] == 0) ++lo;
    while (hi >= 0 && h[hi] == 0) --hi;
    if (hi <= lo) continue;
    const double scale = 255.0 / (hi - lo);
    const double offset = -lo * scale;
    Lut lut;
    for (int ix = 0; ix < 256; ++ix) {
      lut[ix] = static_cast<uint8_t>(std::clamp(static_cast<int>(ix * scale + offset), 0, 255));
    }
    ApplyLut(image, ch, lut);
  }
}

// ImageOps.equalize: each band through its cumulative histogram.
void Equalize(RawSample& image) {
  for (int64_t ch = 0; ch < image.channels; ++ch) {
    auto h = Histogram(image, ch);
    int64_t total = 0, last_nonzero = 0, nonzero = 0;
    for (int64_t count : h) {
      if (count) {
        total += count;
        last_nonzero = count;
        ++nonzero;
      }
    }
    if (nonzero <= 1) continue;
    const int64_t step = (total - last_nonzero) / 255;
    if (step == 0) continue;
    Lut lut;
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[i] = static_cast<uint8_t>(std::min<int64_t>(n / step, 255));
      n += h[i];
    }
    ApplyLut(image, ch, lut);
  }
}

void PointAll(RawSample& image, const Lut& lut) {
  for (auto& p : image.pixels) p = lut[p];
}

// Image.blend(degenerate, image, factor) as Pillow computes it: in float, truncated, clipped
// when extrapolating.
void BlendWith(RawSample& image, const std::vector<uint8_t>& degenerate, double factor) {
  const float alpha = static_cast<float>(factor);
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    const float d = degenerate[i];
    const float v = d + alpha * (static_cast<float>(image.pixels[i]) - d);
    image.pixels[i] = alpha >= 0 && alpha <= 1 ? static_cast<uint8_t>(v) : Clip8(v);
  }
}

// Pillow's RGB -> L: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16.
uint8_t Luma(const uint8_t* rgb) {
  return static_cast<uint8_t>((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
}

void Color(RawSample& image, double factor) {
  if (image.channels != 3) return;  // a grayscale image is its own degenerate
  std::vector<uint8_t> gray(image.pixels.size());
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    const uint8_t l = Luma(&image.pixels[i]);
    gray[i] = gray[i + 1] = gray[i + 2] = l;
  }
  BlendWith(image, gray, factor);
}

void Contrast(RawSample& image, double factor) {
  double sum = 0;
  const int64_t pixels = image.height * image.width;
  for (int64_t i = 0; i < pixels; ++i) {
    const uint8_t* p = &image.pixels[static_cast<size_t>(i * image.channels)];
    sum += image.channels == 3 ? Luma(p) : p[0];
  }
  const auto mean = static_cast<uint8_t>(static_cast<int>(sum / static_cast<double>(pixels) + 0.5));
  BlendWith(image, std::vector<uint8_t>(image.pixels.size(), mean), factor);
}

void Brightness(RawSample& image, double factor) {
  BlendWith(image, std::vector<uint8_t>(image.pixels.size(), 0), factor);
}

// ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, divisor 13; border pixels copied),
// then the blend.
void Sharpness(RawSample& image, double factor) {
  const int64_t h = image.height, w = image.width, c = image.channels;
  std::vector<uint8_t> smooth = image.pixels;
  auto at = [&](int64_t y, int64_t x, int64_t ch) {
    return static_cast<float>(image.pixels[static_cast<size_t>((y * w + x) * c + ch)]);
  };
  for (int64_t y = 1; y + 1 < h; ++y) {
    for (int64_t x = 1; x + 1 < w; ++x) {
      for (int64_t ch = 0; ch < c; ++ch) {
        float sum = 0;
        for (int64_t dy = -1; dy <= 1; ++dy)
          for (int64_t dx = -1; dx <= 1; ++dx)
            sum += at(y + dy, x + dx, ch) * (dy == 0 && dx == 0 ? 5.0f : 1.0f);
        const float v = sum / 13.0f;
        smooth[static_cast<size_t>((y * w + x) * c + ch)] = v <= 0 ? 0
                                                            : v >= 255
                                                                ? 255
                                                                : static_cast<uint8_t>(v + 0.5f);
      }
    }
  }
  BlendWith(image, smooth, factor);
}

// Image.transform(size, AFFINE, (a0..a5), BICUBIC, fillcolor): output pixel (x, y) samples the
// input at (a0 (x+.5) + a1 (y+.5) + a2, a3 (x+.5) + a4 (y+.5) + a5) with Pillow's geometry
// cubic (a = -1) on a clamped 4x4 neighbourhood; points outside the input keep the fill.
void Affine(RawSample& image, const std::array<double, 6>& a, const std::vector<uint8_t>& fill) {
  const int64_t h = image.height, w = image.width, c = image.channels;
  std::vector<uint8_t> out(image.pixels.size());
  auto cubic = [](double v1, double v2, double v3, double v4, double d) {
    const double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
  };
  auto clip_x = [&](int64_t x) { return std::clamp<int64_t>(x, 0, w - 1); };
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      uint8_t* dst = &out[static_cast<size_t>((y * w + x) * c)];
      const double px = static_cast<double>(x) + 0.5, py = static_cast<double>(y) + 0.5;
      double xin = a[0] * px + a[1] * py + a[2];
      double yin = a[3] * px + a[4] * py + a[5];
      if (xin < 0 || xin >= static_cast<double>(w) || yin < 0 || yin >= static_cast<double>(h)) {
        for (int64_t ch = 0; ch < c; ++ch) dst[ch] = fill[static_cast<size_t>(ch)];
        continue;
      }
      xin -= 0.5;
      yin -= 0.5;
      const auto x0 = static_cast<int64_t>(std::floor(xin));
      const auto y0 = static_cast<int64_t>(std::floor(yin));
      const double dx = xin - static_cast<double>(x0), dy = yin - static_cast<double>(y0);
      const int64_t xs[4] = {clip_x(x0 - 1), clip_x(x0), clip_x(x0 + 1), clip_x(x0 + 2)};
      for (int64_t ch = 0; ch < c; ++ch) {
        double rows[4];
        for (int64_t k = 0; k < 4; ++k) {
          const int64_t yy = y0 - 1 + k;
          if (k > 0 && (yy < 0 || yy >= h)) {
            rows[k] = rows[k - 1];  // Pillow repeats the previous row below/above the image
            continue;
          }
          const uint8_t* row =
              &image.pixels[static_cast<size_t>(std::clamp<int64_t>(yy, 0, h - 1) * w * c)];
          rows[k] = cubic(row[xs[0] * c + ch], row[xs[1] * c + ch], row[xs[2] * c + ch],
                          row[xs[3] * c + ch], dx);
        }
        dst[ch] = Clip8(cubic(rows[0], rows[1], rows[2], rows[3], dy));
      }
    }
  }
  image.pixels = std::move(out);
}

// Image.rotate(degrees) about the center, same size.
void Rotate(RawSample& image, double degrees, const std::vector<uint8_t>& fill) {
  const double angle = -std::fmod(std::fmod(degrees, 360.0) + 360.0, 360.0) * kPi / 180.0;
  auto round15 = [](double v) { return std::round(v * 1e15) / 1e15; };
  const double cs = round15(std::cos(angle)), sn = round15(std::sin(angle));
  std::array<double, 6> m = {cs, sn, 0.0, -sn, cs, 0.0};
  const double cx = static_cast<double>(image.width) / 2,
               cy = static_cast<double>(image.height) / 2;
  m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
  m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
  Affine(image, m, fill);
}

}  // namespace

const char* AugmentOpName(AugmentOp op) {
  static constexpr const char* kNames[kNumAugmentOps] = {"AutoContrast",
                                                         "Equalize",
                                                         "Invert",
                                                         "Rotate",
                                                         "PosterizeIncreasing",
                                                         "SolarizeIncreasing",
                                                         "SolarizeAdd",
                                                         "ColorIncreasing",
                                                         "ContrastIncreasing",
                                                         "BrightnessIncreasing",
                                                         "SharpnessIncreasing",
                                                         "ShearX",
                                                         "ShearY",
                                                         "TranslateXRel",
                                                         "TranslateYRel"};
  return kNames[static_cast<int>(op)];
}

void ApplyAugmentOp(RawSample& image, AugmentOp op, double magnitude, bool negate,
                    const std::vector<uint8_t>& fill) {
  const double level = std::clamp(magnitude, 0.0, kLevelDenominator) / kLevelDenominator;
  const double sign = negate ? -1.0 : 1.0;
  const double enhance = std::max(0.1, 1.0 + sign * level * 0.9);
  Lut lut;
  switch (op) {
    case AugmentOp::kAutoContrast:
      AutoContrast(image);
      return;
    case AugmentOp::kEqualize:
      Equalize(image);
      return;
    case AugmentOp::kInvert:
      for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(255 - i);
      PointAll(image, lut);
      return;
    case AugmentOp::kRotate:
      Rotate(image, sign * level * 30.0, fill);
      return;
    case AugmentOp::kPosterizeIncreasing: {
      const int bits = 4 - static_cast<int>(level * 4);
      const int mask = ~((1 << (8 - bits)) - 1);
      for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i & mask);
      PointAll(image, lut);
      return;
    }
    case AugmentOp::kSolarizeIncreasing: {
      const int threshold = 256 - std::min(256, static_cast<int>(level * 256));
      for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i < threshold ? i : 255 - i);
      PointAll(image, lut);
      return;
    }
    case AugmentOp::kSolarizeAdd: {
      const int add = std::min(128, static_cast<int>(level * 110));
      for (int i = 0; i < 256; ++i)
        lut[i] = static_cast<uint8_t>(i < 128 ? std::min(255, i + add) : i);
      PointAll(image, lut);
      return;
    }
    case AugmentOp::kColorIncreasing:
      Color(image, enhance);
      return;
    case AugmentOp::kContrastIncreasing:
      Contrast(image, enhance);
      return;
    case AugmentOp::kBrightnessIncreasing:
      Brightness(image, enhance);
      return;
    case AugmentOp::kSharpnessIncreasing:
      Sharpness(image, enhance);
      return;
    case AugmentOp::kShearX:
      Affine(image, {1, sign * level * 0.3, 0, 0, 1, 0}, fill);
      return;
    case AugmentOp::kShearY:
      Affine(image, {1, 0, 0, sign * level * 0.3, 1, 0}, fill);
      return;
    case AugmentOp::kTranslateXRel:
      Affine(image, {1, 0, sign * level * 0.45 * static_cast<double>(image.width), 0, 1, 0}, fill);
      return;
    case AugmentOp::kTranslateYRel:
      Affine(image, {1, 0, 0, 0, 1, sign * level * 0.45 * static_cast<double>(image.height)}, fill);
      return;
  }
}

void RandAugment(RawSample& image, const RandAugmentOptions& options, uint64_t key) {
  CounterRng rng(key);
  std::vector<uint8_t> fill = options.fill;
  fill.resize(static_cast<size_t>(image.channels), fill.empty() ? 128 : fill.back());
  for (int64_t i = 0; i < options.num_ops; ++i) {
    const auto op = static_cast<AugmentOp>(rng.Below(kNumAugmentOps));
    const double apply = rng.Uniform();
    // Box-Muller: the magnitude noise.
    const double u1 = rng.Uniform(), u2 = rng.Uniform();
    const double normal = std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * kPi * u2);
    const bool negate = rng.Uniform() < 0.5;
    if (apply >= options.prob) continue;
    ApplyAugmentOp(image, op, options.magnitude + options.magnitude_std * normal, negate, fill);
  }
}

}  // namespace maestro::dataloader
