#include "maestro/model/masking.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "maestro/shared/rng.h"

namespace maestro::model {
namespace {

// A seed from the bits of one row of noise.
uint64_t SeedFromNoise(const float* row, int64_t n) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &row[i], sizeof(bits));
    for (int b = 0; b < 4; ++b) {
      h ^= (bits >> (8 * b)) & 0xFF;
      h *= 0x100000001B3ULL;
    }
  }
  return h;
}

// Uniform integer in [lo, hi], inclusive as Python's random.randint.
int64_t RandInt(CounterRng& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(hi - lo + 1)));
}

}  // namespace

int64_t NumVisible(MaskSampling sampling, int64_t grid_size, double mask_ratio) {
  const int64_t num_patches = grid_size * grid_size;
  switch (sampling) {
    case MaskSampling::kRandom:
      return static_cast<int64_t>(static_cast<double>(num_patches) * (1.0 - mask_ratio));
    case MaskSampling::kBlock:
      return num_patches - static_cast<int64_t>(static_cast<double>(num_patches) * mask_ratio);
    case MaskSampling::kGrid:
      return ((grid_size + 1) / 2) * ((grid_size + 1) / 2);
  }
  return num_patches;
}

torch::Tensor BlockMask(int64_t grid_size, double mask_ratio, uint64_t seed) {
  const int64_t num_patches = grid_size * grid_size;
  const int64_t num_masking = static_cast<int64_t>(static_cast<double>(num_patches) * mask_ratio);
  // BEiT uses blocks of at least 16 patches on its 14 x 14 grid; keep that share of the image.
  const int64_t min_block = std::max<int64_t>(1, (16 * num_patches + 98) / 196);
  const double log_aspect_lo = std::log(0.3), log_aspect_hi = std::log(1.0 / 0.3);
  CounterRng rng(seed);
  std::vector<uint8_t> mask(static_cast<size_t>(num_patches), 0);
  int64_t count = 0;

  // One block of at most `max_new` new patches; returns how many it added (0 after 10 misses).
  auto add_block = [&](int64_t max_new) -> int64_t {
    for (int attempt = 0; attempt < 10; ++attempt) {
      double target_area =
          rng.Uniform(static_cast<double>(min_block), static_cast<double>(max_new));
      double aspect = std::exp(rng.Uniform(log_aspect_lo, log_aspect_hi));
      auto h = static_cast<int64_t>(std::lround(std::sqrt(target_area * aspect)));
      auto w = static_cast<int64_t>(std::lround(std::sqrt(target_area / aspect)));
      if (h < 1 || w < 1 || h >= grid_size || w >= grid_size) continue;
      int64_t top = RandInt(rng, 0, grid_size - h);
      int64_t left = RandInt(rng, 0, grid_size - w);
      int64_t already = 0;
      for (int64_t r = top; r < top + h; ++r) {
        for (int64_t c = left; c < left + w; ++c) already += mask[r * grid_size + c];
      }
      int64_t fresh = h * w - already;
      if (fresh > 0 && fresh <= max_new) {
        for (int64_t r = top; r < top + h; ++r) {
          for (int64_t c = left; c < left + w; ++c) mask[r * grid_size + c] = 1;
        }
        return fresh;
      }
    }
    return 0;
  };

  while (count < num_masking) {
    int64_t added = add_block(num_masking - count);
    if (added == 0) break;
    count += added;
  }
  // Top up with single random patches so the count is exact.
  while (count < num_masking) {
    int64_t i = RandInt(rng, 0, num_patches - 1);
    if (!mask[i]) {
      mask[i] = 1;
      ++count;
    }
  }
  auto out = torch::zeros({grid_size, grid_size}, torch::kBool);
  auto accessor = out.accessor<bool, 2>();
  for (int64_t i = 0; i < num_patches; ++i) accessor[i / grid_size][i % grid_size] = mask[i] != 0;
  return out;
}

torch::Tensor MaskSortKeys(const torch::Tensor& noise, MaskSampling sampling, int64_t grid_size,
                           double mask_ratio) {
  TORCH_CHECK(noise.dim() == 2 && noise.size(1) == grid_size * grid_size, "noise must be (N, ",
              grid_size * grid_size, "), got ", noise.sizes());
  if (sampling == MaskSampling::kRandom) return noise;
  torch::Tensor masked;  // (N, L) float, 1 where the pattern masks
  if (sampling == MaskSampling::kGrid) {
    auto index = torch::arange(grid_size);
    auto even = (index.remainder(2) == 0);
    auto keep = even.unsqueeze(1).logical_and(even.unsqueeze(0)).reshape({1, -1});  // (1, L)
    masked = keep.logical_not().to(torch::kFloat32).expand({noise.size(0), -1});
  } else {
    auto host_noise = noise.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<torch::Tensor> rows;
    rows.reserve(static_cast<size_t>(noise.size(0)));
    for (int64_t n = 0; n < noise.size(0); ++n) {
      uint64_t seed = SeedFromNoise(host_noise[n].data_ptr<float>(), host_noise.size(1));
      rows.push_back(BlockMask(grid_size, mask_ratio, seed).reshape({-1}));
    }
    masked = torch::stack(rows).to(torch::kFloat32);
  }
  return noise.to(torch::kFloat32) + 2.0 * masked.to(noise.device());
}

}  // namespace maestro::model
