#include "maestro/engine/heldout.h"

#include <algorithm>

#include "maestro/dataloader/transform.h"

namespace maestro::engine {

Result<HeldOutImages> LoadHeldOutImages(const dataloader::Dataset& dataset,
                                        const model::MaeOptions& options,
                                        const std::vector<double>& mean,
                                        const std::vector<double>& std, int64_t count,
                                        uint64_t mask_seed) {
  count = std::min(count, dataset.size());
  if (count <= 0) return InvalidArgumentError("no held-out images to measure on");
  dataloader::AugmentOptions resize;
  resize.output_size = options.img_size;
  resize.random_crop = false;
  resize.horizontal_flip = false;
  std::vector<torch::Tensor> images, noise;
  for (int64_t i = 0; i < count; ++i) {
    auto sample = dataset.Get(i);
    if (!sample.ok()) return sample.status().WithContext("held-out image " + std::to_string(i));
    auto image = dataloader::AugmentSample(*sample, resize, 0, 0);
    if (image.size(0) != options.in_chans) image = image.expand({options.in_chans, -1, -1});
    images.push_back(image);
    noise.push_back(dataloader::MaskNoise(options.num_patches(), mask_seed, 0, i));
  }
  auto m = torch::tensor(mean, torch::kFloat32).view({1, -1, 1, 1});
  auto s = torch::tensor(std, torch::kFloat32).view({1, -1, 1, 1});
  return HeldOutImages{(torch::stack(images).to(torch::kFloat32) / 255.0 - m) / s,
                       torch::stack(noise)};
}

MaskedLossFigures MeasureMaskedLoss(model::MaskedAutoencoderViT& model, const HeldOutImages& set,
                                    bool with_baseline) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model->parameters().front().device();
  double model_sum = 0, baseline_sum = 0;
  const int64_t n = set.images.size(0), chunk = 500;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    auto imgs = set.images.slice(0, begin, end).to(device);
    auto noise = set.noise.slice(0, begin, end).to(device);
    auto out = model->forward(imgs, noise);
    const double weight = static_cast<double>(end - begin);
    model_sum += out.loss.item<double>() * weight;
    if (with_baseline) {
      auto target = model->loss_target(imgs);
      auto visible = (1 - out.mask).unsqueeze(-1);                               // (B, L, 1)
      auto mean_patch = (target * visible).sum(1, true) / visible.sum(1, true);  // (B, 1, D)
      baseline_sum +=
          model->forward_loss(imgs, mean_patch.expand_as(target), out.mask).item<double>() * weight;
    }
  }
  return {model_sum / static_cast<double>(n), baseline_sum / static_cast<double>(n)};
}

}  // namespace maestro::engine
