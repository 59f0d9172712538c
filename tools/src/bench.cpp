// maestro-bench: forward + backward throughput of an MAE preset, on CPU or CUDA.
//
// Prints a table row and, with --out, writes the figures and the machine they came from as
// JSON (bench/results/). Timing: --warmup steps first, then the median of --steps timed steps
// (CUDA synchronized before every clock read).
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "machine.h"
#include "maestro/engine/adamw.h"
#include "maestro/engine/host_memory.h"
#include "maestro/model/autocast.h"
#include "maestro/model/flops.h"
#include "maestro/model/mae.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"

namespace {

using maestro::model::MaskedAutoencoderViT;

struct Args {
  std::string preset = "mae_vit_tiny_fmnist";
  int64_t batch = 256;
  int64_t steps = 20;
  int64_t warmup = 3;
  std::string device = "cpu";
  std::string precision = "fp32";
  int64_t threads = 0;
  bool optimizer = false;
  bool forward_only = false;
  double peak_tflops = 0;
  std::string out;
  std::string profile;
};

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

int Run(const Args& args) {
  auto options = maestro::model::MaePreset(args.preset);
  if (!options.ok()) {
    std::cerr << "maestro-bench: " << options.status().message() << "\n";
    return 2;
  }
  torch::Device device(args.device);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::cerr << "maestro-bench: --device " << args.device << " but CUDA is not available here\n";
    return 2;
  }
  if (args.precision != "fp32" && args.precision != "bf16") {
    std::cerr << "maestro-bench: --precision must be fp32 or bf16\n";
    return 2;
  }
  const bool bf16 = args.precision == "bf16";
  if (args.threads > 0) torch::set_num_threads(static_cast<int>(args.threads));
  torch::manual_seed(0);

  MaskedAutoencoderViT model(*options);
  model->to(device);
  model->train();
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  // The engine's optimizer: the official grouping, at::_fused_adamw_ on CUDA.
  maestro::engine::AdamW adamw(maestro::engine::WeightDecayGroups(named, 0.05), {});
  const auto& o = model->options();
  auto imgs = torch::randn({args.batch, o.in_chans, o.img_size, o.img_size},
                           torch::TensorOptions().device(device));

  std::vector<double> step_ms;
  double last_loss = 0;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profiler;
  for (int64_t step = 0; step < args.warmup + args.steps; ++step) {
    Synchronize(device);
    if (step == args.warmup && !args.profile.empty()) {
      profiler = std::make_unique<torch::autograd::profiler::RecordProfile>(args.profile);
    }
    auto start = std::chrono::steady_clock::now();
    adamw.ZeroGrad();
    torch::Tensor loss;
    {
      maestro::model::AutocastGuard autocast(device.type(), bf16);
      torch::AutoGradMode grad_mode(!args.forward_only);
      loss = model->forward(imgs).loss;
    }
    if (!args.forward_only) loss.backward();
    if (args.optimizer) adamw.Step(1.5e-4);
    Synchronize(device);
    auto elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
    if (step >= args.warmup) step_ms.push_back(elapsed.count());
    if (step + 1 == args.warmup + args.steps) last_loss = loss.item<double>();
  }
  profiler.reset();  // writes the trace
  std::sort(step_ms.begin(), step_ms.end());
  const double median_ms = step_ms[step_ms.size() / 2];
  const double img_per_s = static_cast<double>(args.batch) / (median_ms / 1000.0);
  const double flops_per_img = maestro::model::MaeFlopsPerImage(*options).training_step();
  const double achieved_tflops = img_per_s * flops_per_img / 1e12;

  const std::string machine = device.is_cuda() ? "CUDA device " + args.device + " (" +
                                                     maestro::tools::MachineDescription() + ")"
                                               : maestro::tools::MachineDescription();
  std::printf("%-22s %-6s %-5s batch %4lld  %s  median step %9.2f ms  %10.1f img/s  %8.3f TFLOP/s",
              args.preset.c_str(), args.device.c_str(), args.precision.c_str(),
              static_cast<long long>(args.batch),
              args.forward_only ? "fwd"
              : args.optimizer  ? "fwd+bwd+adamw"
                                : "fwd+bwd",
              median_ms, img_per_s, achieved_tflops);
  if (args.peak_tflops > 0)
    std::printf("  MFU %5.1f%%", 100.0 * achieved_tflops / args.peak_tflops);
  std::printf("\n  on %s, torch %s, %d threads, loss %.4f\n", machine.c_str(), TORCH_VERSION,
              torch::get_num_threads(), last_loss);

  if (!args.out.empty()) {
    maestro::Json::Object result{
        {"preset", args.preset},
        {"device", args.device},
        {"precision", args.precision},
        {"batch", args.batch},
        {"includes_optimizer", args.optimizer},
        {"forward_only", args.forward_only},
        {"steps_timed", args.steps},
        {"median_step_ms", median_ms},
        {"images_per_second", img_per_s},
        {"gflop_per_image_step", flops_per_img / 1e9},
        {"achieved_tflops", achieved_tflops},
        {"machine", machine},
        {"torch", std::string(TORCH_VERSION)},
        {"threads", static_cast<int64_t>(torch::get_num_threads())},
    };
    if (args.peak_tflops > 0) result["mfu"] = achieved_tflops / args.peak_tflops;
    auto status = maestro::WriteFileAtomic(args.out, maestro::Json(result).Dump() + "\n");
    if (!status.ok()) {
      std::cerr << "maestro-bench: " << status.ToString() << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  maestro::FlagParser flags(
      "maestro-bench",
      "Measures MAE pretraining throughput (forward + backward, optionally the AdamW step) of a\n"
      "model preset on random images, and prints images/s and achieved TFLOP/s.");
  flags.Add("preset", &args.preset,
            "model preset (mae_vit_tiny_fmnist, mae_vit_base_patch16, ...)");
  flags.Add("batch", &args.batch, "images per step");
  flags.Add("steps", &args.steps, "timed steps (the median is reported)");
  flags.Add("warmup", &args.warmup, "untimed steps first");
  flags.Add("device", &args.device, "cpu or cuda:N");
  flags.Add("precision", &args.precision, "fp32, or bf16 (autocast)");
  flags.Add("threads", &args.threads, "intra-op CPU threads (0: LibTorch's default)");
  flags.Add("optimizer", &args.optimizer, "include an AdamW step in each timed step");
  flags.Add("forward-only", &args.forward_only, "time the forward pass alone, without autograd");
  flags.Add("peak-tflops", &args.peak_tflops, "the device's matrix rate, to print MFU (0: off)");
  flags.Add("out", &args.out, "write the result as JSON to this file");
  flags.Add("profile", &args.profile,
            "write a Chrome trace of the timed steps (LibTorch profiler)");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  if (args.batch <= 0 || args.steps <= 0 || args.warmup < 0) {
    std::cerr << "maestro-bench: --batch and --steps must be positive, --warmup non-negative\n";
    return 2;
  }
  // As maestro-train does: the figures are the trainer's.
  maestro::engine::TuneHostAllocatorForTraining();
  try {
    return Run(args);
  } catch (const std::exception& e) {
    std::cerr << "maestro-bench: " << e.what() << "\n";
    return 1;
  }
}
