// Test helper for tests/python/adamw_oracle.py: runs maestro's AdamW (fused, or with "single"
// the op-by-op update) for five steps on the
// real small model's named parameters with seeded gradients, and writes
//   DIR/init.safetensors    the parameters before
//   DIR/grads.safetensors   "<k>.<name>": the gradient of step k
//   DIR/result.safetensors  the parameters after
//   DIR/lrs.json            the learning rate of each step
#include <iostream>

#include "maestro/checkpoint/torch_bridge.h"
#include "maestro/engine/adamw.h"
#include "maestro/model/mae.h"
#include "maestro/shared/file_util.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::string(argv[2]) != "single")) {
    std::cerr << "usage: adamw_tool DIR [single]\n";
    return 2;
  }
  const bool fused = argc == 2;
  const std::string dir = argv[1];
  using maestro::checkpoint::FromTorch;
  torch::manual_seed(5);
  maestro::model::MaskedAutoencoderViT model(maestro::model::MaeVitTinyFashionMnist());
  std::vector<std::pair<std::string, torch::Tensor>> named;
  maestro::checkpoint::TensorMap init, grads, result;
  for (const auto& item : model->named_parameters()) {
    named.emplace_back(item.key(), item.value());
    init[item.key()] = FromTorch(item.value()).value();
  }
  maestro::engine::AdamW optimizer(maestro::engine::WeightDecayGroups(named, 0.05),
                                   {0.9, 0.95, 1e-8, fused});
  const std::vector<double> lrs = {1e-3, 5e-4, 2e-3, 1e-4, 3e-3};
  for (size_t k = 0; k < lrs.size(); ++k) {
    for (auto& [name, param] : named) {
      if (!param.requires_grad()) continue;
      auto grad = torch::randn_like(param) * (0.01 * static_cast<double>(k + 1));
      param.mutable_grad() = grad;
      grads[std::to_string(k) + "." + name] = FromTorch(grad).value();
    }
    optimizer.Step(lrs[k]);
  }
  for (const auto& [name, param] : named) result[name] = FromTorch(param).value();
  std::string lr_text = "[";
  for (size_t k = 0; k < lrs.size(); ++k) lr_text += (k ? ", " : "") + std::to_string(lrs[k]);
  for (const auto& [file, tensors] :
       {std::pair{"init", &init}, std::pair{"grads", &grads}, std::pair{"result", &result}}) {
    maestro::ThrowIfError(
        maestro::checkpoint::WriteSafetensors(dir + "/" + file + ".safetensors", {*tensors, {}}));
  }
  maestro::ThrowIfError(maestro::WriteFileAtomic(dir + "/lrs.json", lr_text + "]\n"));
  std::cout << "wrote " << named.size() << " parameters, " << lrs.size() << " steps to " << dir
            << "\n";
  return 0;
}
