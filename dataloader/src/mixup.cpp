#include "maestro/dataloader/mixup.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "maestro/shared/rng.h"

namespace maestro::dataloader {
namespace {

constexpr double kPi = 3.14159265358979323846;

double Normal(CounterRng& rng) {
  const double u1 = rng.Uniform(), u2 = rng.Uniform();
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * kPi * u2);
}

// Marsaglia and Tsang's method; shape < 1 through Gamma(shape + 1) * U^(1 / shape).
double Gamma(double shape, CounterRng& rng) {
  if (shape < 1.0) {
    const double u = rng.Uniform();
    return Gamma(shape + 1.0, rng) * std::pow(1.0 - u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = Normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - rng.Uniform();  // (0, 1]
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

}  // namespace

double SampleBeta(double a, uint64_t key) {
  CounterRng rng(key);
  const double x = Gamma(a, rng), y = Gamma(a, rng);
  return x / (x + y);
}

MixupDraw SampleMixup(const MixupOptions& o, int64_t height, int64_t width, uint64_t key) {
  MixupDraw draw;
  if (!o.enabled()) return draw;
  CounterRng rng(key);
  if (rng.Uniform() >= o.prob) return draw;
  if (o.mixup_alpha > 0 && o.cutmix_alpha > 0) {
    draw.cutmix = rng.Uniform() < o.switch_prob;
  } else {
    draw.cutmix = o.cutmix_alpha > 0;
  }
  const double alpha = draw.cutmix ? o.cutmix_alpha : o.mixup_alpha;
  draw.lambda = SampleBeta(alpha, HashKey({key, 0x42455441ULL}));  // "BETA"
  draw.mixed = true;
  draw.center_y = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(height)));
  draw.center_x = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(width)));
  return draw;
}

CutBox CutmixBox(int64_t height, int64_t width, double lambda, int64_t cy, int64_t cx) {
  const double ratio = std::sqrt(1.0 - lambda);
  const auto cut_h = static_cast<int64_t>(static_cast<double>(height) * ratio);
  const auto cut_w = static_cast<int64_t>(static_cast<double>(width) * ratio);
  CutBox box;
  box.y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, height);
  box.y1 = std::clamp<int64_t>(cy + (cut_h + 1) / 2, 0, height);
  box.x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, width);
  box.x1 = std::clamp<int64_t>(cx + (cut_w + 1) / 2, 0, width);
  return box;
}

torch::Tensor ApplyMixup(torch::Tensor& images, const torch::Tensor& labels, const MixupDraw& draw,
                         const MixupOptions& o) {
  TORCH_CHECK(images.dim() == 4 && images.size(0) % 2 == 0,
              "mixup needs an even batch of (N, C, H, W) images");
  double lambda = 1.0;
  if (draw.mixed && draw.lambda != 1.0) {
    lambda = draw.lambda;
    torch::NoGradGuard no_grad;
    if (draw.cutmix) {
      const int64_t h = images.size(2), w = images.size(3);
      const CutBox box = CutmixBox(h, w, draw.lambda, draw.center_y, draw.center_x);
      auto region = [&](const torch::Tensor& t) {
        return t.slice(2, box.y0, box.y1).slice(3, box.x0, box.x1);
      };
      region(images).copy_(region(images.flip(0)));
      lambda = 1.0 - static_cast<double>((box.y1 - box.y0) * (box.x1 - box.x0)) /
                         static_cast<double>(h * w);
    } else {
      auto flipped = images.flip(0).mul_(1.0 - lambda);
      images.mul_(lambda).add_(flipped);
    }
  }
  const double off = o.label_smoothing / static_cast<double>(o.num_classes);
  const double on = 1.0 - o.label_smoothing + off;
  auto one_hot = torch::full({labels.size(0), o.num_classes}, off,
                             torch::TensorOptions().dtype(torch::kFloat32).device(labels.device()))
                     .scatter_(1, labels.view({-1, 1}), on);
  return one_hot * lambda + one_hot.flip(0) * (1.0 - lambda);
}

bool RandomErase(torch::Tensor& image, double probability, uint64_t key) {
  CounterRng rng(key);
  if (!(rng.Uniform() < probability)) return false;
  const int64_t channels = image.size(0), h = image.size(1), w = image.size(2);
  const double area = static_cast<double>(h * w);
  const double log_lo = std::log(0.3), log_hi = std::log(1.0 / 0.3);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = rng.Uniform(0.02, 1.0 / 3.0) * area;
    const double aspect = std::exp(rng.Uniform(log_lo, log_hi));
    const auto eh = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
    const auto ew = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
    if (ew < w && eh < h) {
      const auto top = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(h - eh + 1)));
      const auto left = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(w - ew + 1)));
      std::vector<float> noise(static_cast<size_t>(channels * eh * ew));
      for (auto& v : noise) v = static_cast<float>(Normal(rng));
      auto values = torch::from_blob(noise.data(), {channels, eh, ew}, torch::kFloat32);
      torch::NoGradGuard no_grad;
      image.slice(1, top, top + eh).slice(2, left, left + ew).copy_(values.to(image.device()));
      return true;
    }
  }
  return false;
}

}  // namespace maestro::dataloader
