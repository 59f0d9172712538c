// maestro-gpu-check: correctness of the MAE model on a CUDA device, against the CPU.
//
// 1. fp32 (TF32 off): the same weights and noise give the same mask, loss, predictions and
//    gradients on CUDA as on the CPU.
// 2. bf16 autocast on CUDA: the loss stays within 2% of fp32 and every gradient is finite.
// 3. Block and grid mask sampling run on CUDA tensors and give the CPU's masks.
// Exit 0 when all pass, 1 when any fails, 0 with "skipped" when no GPU is present.
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

#include "maestro/engine/adamw.h"
#include "maestro/model/autocast.h"
#include "maestro/model/mae.h"
#include "maestro/shared/flags.h"

namespace {

using maestro::model::MaeOptions;
using maestro::model::MaskedAutoencoderViT;

int failures = 0;

void Check(bool ok, const std::string& what, double value, double limit) {
  std::printf("  %-58s %12.3e  (limit %.1e)  %s\n", what.c_str(), value, limit, ok ? "ok" : "FAIL");
  if (!ok) ++failures;
}

double RelativeError(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got.cpu().to(torch::kFloat64) - want.cpu().to(torch::kFloat64)).norm() /
          want.cpu().to(torch::kFloat64).norm())
      .item<double>();
}

MaeOptions CheckOptions() {
  MaeOptions o;  // a reduced ViT-B/16 at 224 px: the real shapes, fewer blocks
  o.img_size = 224;
  o.patch_size = 16;
  o.embed_dim = 768;
  o.depth = 2;
  o.num_heads = 12;
  o.decoder_embed_dim = 512;
  o.decoder_depth = 2;
  o.decoder_num_heads = 16;
  return o;
}

void CopyWeights(MaskedAutoencoderViT& from, MaskedAutoencoderViT& to) {
  torch::NoGradGuard no_grad;
  auto source = from->named_parameters();
  for (auto& item : to->named_parameters()) item.value().copy_(source[item.key()]);
}

void Fp32Parity(const torch::Device& device) {
  std::cout << "fp32 parity, CPU vs " << device.str() << "\n";
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  for (bool norm_pix : {false, true}) {
    MaeOptions o = CheckOptions();
    o.norm_pix_loss = norm_pix;
    torch::manual_seed(0);
    MaskedAutoencoderViT cpu(o), gpu(o);
    CopyWeights(cpu, gpu);
    gpu->to(device);
    auto imgs = torch::randn({8, 3, 224, 224});
    auto noise = torch::rand({8, o.num_patches()});
    auto out_cpu = cpu->forward(imgs, noise);
    auto out_gpu = gpu->forward(imgs.to(device), noise.to(device));
    out_cpu.loss.backward();
    out_gpu.loss.backward();
    const std::string tag = norm_pix ? " [norm_pix_loss]" : "";
    Check(torch::equal(out_cpu.mask, out_gpu.mask.cpu()), "mask identical" + tag,
          (out_cpu.mask - out_gpu.mask.cpu()).abs().sum().item<double>(), 0);
    double loss_rel = std::abs(out_cpu.loss.item<double>() - out_gpu.loss.item<double>()) /
                      std::abs(out_cpu.loss.item<double>());
    Check(loss_rel < 1e-5, "loss relative difference" + tag, loss_rel, 1e-5);
    double pred_abs = (out_cpu.pred - out_gpu.pred.cpu()).abs().max().item<double>();
    Check(pred_abs < 1e-3, "predictions max abs difference" + tag, pred_abs, 1e-3);
    auto gpu_params = gpu->named_parameters();
    double worst = 0;
    std::string worst_name;
    for (const auto& item : cpu->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      double rel = RelativeError(gpu_params[item.key()].grad(), item.value().grad());
      if (rel > worst) {
        worst = rel;
        worst_name = item.key();
      }
    }
    Check(worst < 1e-4, "worst gradient relative difference" + tag + " (" + worst_name + ")", worst,
          1e-4);
  }
  at::globalContext().setAllowTF32CuBLAS(true);
  at::globalContext().setAllowTF32CuDNN(true);
}

void Bf16Autocast(const torch::Device& device) {
  std::cout << "bf16 autocast on " << device.str() << "\n";
  torch::manual_seed(1);
  MaskedAutoencoderViT model(CheckOptions());
  model->to(device);
  auto imgs = torch::randn({16, 3, 224, 224}, torch::TensorOptions().device(device));
  auto noise =
      torch::rand({16, model->options().num_patches()}, torch::TensorOptions().device(device));
  double fp32_loss = model->forward(imgs, noise).loss.item<double>();
  torch::Tensor loss;
  {
    maestro::model::AutocastGuard autocast(device.type(), true);
    auto out = model->forward(imgs, noise);
    Check(out.pred.scalar_type() == torch::kBFloat16, "decoder output is bf16 under autocast", 0,
          0);
    loss = out.loss;
  }
  loss.backward();
  double rel = std::abs(loss.item<double>() - fp32_loss) / fp32_loss;
  Check(rel < 0.02, "bf16 loss relative to fp32", rel, 0.02);
  bool finite = true;
  for (const auto& p : model->parameters()) {
    if (p.requires_grad()) finite = finite && torch::isfinite(p.grad()).all().item<bool>();
  }
  Check(finite, "all gradients finite (fp32 master weights)", finite ? 0 : 1, 0);
  Check(!at::autocast::is_autocast_enabled(device.type()), "autocast off after the guard", 0, 0);
}

void MaskSamplingOnDevice(const torch::Device& device) {
  std::cout << "mask sampling on " << device.str() << "\n";
  for (auto sampling :
       {maestro::model::MaskSampling::kBlock, maestro::model::MaskSampling::kGrid}) {
    MaeOptions o = CheckOptions();
    o.mask_sampling = sampling;
    MaskedAutoencoderViT cpu(o);
    auto noise = torch::rand({4, o.num_patches()});
    auto on_cpu = cpu->random_masking(noise);
    auto on_gpu = cpu->random_masking(noise.to(device));
    Check(torch::equal(on_cpu.mask, on_gpu.mask.cpu()),
          std::string(maestro::model::MaskSamplingName(sampling)) + " masks equal to the CPU's",
          (on_cpu.mask - on_gpu.mask.cpu()).abs().sum().item<double>(), 0);
  }
}

// The fused CUDA AdamW against the op-by-op CPU update (itself checked against
// torch.optim.AdamW by tests/python/adamw_oracle.py): five steps on the model's parameters.
void FusedAdamWOnDevice(const torch::Device& device) {
  std::cout << "fused AdamW on " << device.str() << " vs the op-by-op CPU update\n";
  torch::manual_seed(2);
  MaskedAutoencoderViT cpu(CheckOptions()), gpu(CheckOptions());
  CopyWeights(cpu, gpu);
  gpu->to(device);
  auto named = [](MaskedAutoencoderViT& m) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : m->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  };
  auto cpu_params = named(cpu), gpu_params = named(gpu);
  maestro::engine::AdamW cpu_opt(maestro::engine::WeightDecayGroups(cpu_params, 0.05),
                                 {0.9, 0.95, 1e-8, /*fused=*/false});
  maestro::engine::AdamW gpu_opt(maestro::engine::WeightDecayGroups(gpu_params, 0.05),
                                 {0.9, 0.95, 1e-8, /*fused=*/true});
  for (int step = 0; step < 5; ++step) {
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      if (!cpu_params[i].second.requires_grad()) continue;
      auto grad = torch::randn_like(cpu_params[i].second) * 0.01;
      cpu_params[i].second.mutable_grad() = grad;
      gpu_params[i].second.mutable_grad() = grad.to(device);
    }
    cpu_opt.Step(1e-3 * (step + 1));
    gpu_opt.Step(1e-3 * (step + 1));
  }
  double worst = 0;
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    worst = std::max(worst, RelativeError(gpu_params[i].second, cpu_params[i].second));
  }
  Check(worst < 1e-6, "worst parameter relative difference after 5 steps", worst, 1e-6);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cuda:0";
  maestro::FlagParser flags("maestro-gpu-check",
                            "Checks the MAE model on a CUDA device against the CPU (fp32 parity,\n"
                            "bf16 autocast, mask sampling). Prints 'skipped' without a GPU.");
  flags.Add("device", &device_name, "the CUDA device");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  if (!torch::cuda::is_available()) {
    std::cout << "maestro-gpu-check: no CUDA device here: skipped\n";
    return 0;
  }
  try {
    torch::Device device(device_name);
    Fp32Parity(device);
    Bf16Autocast(device);
    MaskSamplingOnDevice(device);
    FusedAdamWOnDevice(device);
  } catch (const std::exception& e) {
    std::cerr << "maestro-gpu-check: " << e.what() << "\n";
    return 1;
  }
  std::cout << (failures == 0
                    ? "maestro-gpu-check: all checks passed\n"
                    : "maestro-gpu-check: " + std::to_string(failures) + " checks FAILED\n");
  return failures == 0 ? 0 : 1;
}
