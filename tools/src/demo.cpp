// maestro-demo: MAE on Fashion-MNIST in about a minute on a laptop-class CPU.
//
// Trains the small preset for --steps steps on the training images (AdamW, the paper's betas
// and weight decay), reports the masked-patch loss on held-out test images before and after,
// and writes a reconstruction picture (rows: original, masked input, reconstruction,
// reconstruction with the visible patches pasted back) and the weights as safetensors.
// Later issues grow this into the full system demo (coordinator, workers, data service).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "maestro/checkpoint/safetensors.h"
#include "maestro/checkpoint/torch_bridge.h"
#include "maestro/dataloader/idx.h"
#include "maestro/model/mae.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/tools/png.h"

namespace {

using maestro::model::MaskedAutoencoderViT;

// Fashion-MNIST training-set pixel statistics.
constexpr double kMean = 0.2860, kStd = 0.3530;

struct Args {
  std::string data_dir = maestro::dataloader::kFashionMnistDir;
  std::string out = "demo-output";
  int64_t steps = 400;
  int64_t batch = 128;
  double lr = 1e-3;
  int64_t images = 8;
  int64_t seed = 0;
  double mask_ratio = 0.75;
};

// (N, 1, 28, 28) float, normalized.
torch::Tensor LoadImages(const std::string& path) {
  auto idx = maestro::dataloader::ReadIdx(path);
  if (!idx.ok()) throw maestro::Error(idx.status());
  if (idx->dims.size() != 3) {
    throw maestro::Error(maestro::DataLossError(path + ": expected N x H x W images"));
  }
  auto n = static_cast<int64_t>(idx->dims[0]), h = static_cast<int64_t>(idx->dims[1]),
       w = static_cast<int64_t>(idx->dims[2]);
  auto bytes = torch::from_blob(idx->data.data(), {n, 1, h, w}, torch::kUInt8).clone();
  return (bytes.to(torch::kFloat32) / 255.0 - kMean) / kStd;
}

// Normalized (N, 1, H, W) -> bytes, clamped.
torch::Tensor ToBytes(const torch::Tensor& x) {
  return ((x * kStd + kMean) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
}

double HeldOutLoss(MaskedAutoencoderViT& model, const torch::Tensor& test,
                   const torch::Tensor& noise) {
  torch::NoGradGuard no_grad;
  model->eval();
  double loss = model->forward(test, noise).loss.item<double>();
  model->train();
  return loss;
}

int Run(const Args& args) {
  torch::manual_seed(static_cast<uint64_t>(args.seed));
  const std::string train_path = args.data_dir + "/train-images-idx3-ubyte.gz";
  const std::string test_path = args.data_dir + "/t10k-images-idx3-ubyte.gz";
  std::cout << "maestro-demo: loading Fashion-MNIST from " << args.data_dir << "\n";
  auto train = LoadImages(train_path);
  auto test = LoadImages(test_path).slice(0, 0, 1000);
  std::cout << "  " << train.size(0) << " training images, " << test.size(0)
            << " held-out test images (28x28, 1 channel)\n";

  auto options = maestro::model::MaeVitTinyFashionMnist();
  options.mask_ratio = args.mask_ratio;
  MaskedAutoencoderViT model(options);
  std::cout << "  model mae_vit_tiny_fmnist: " << model->num_trainable_parameters()
            << " trainable parameters, " << options.num_patches() << " patches of "
            << options.patch_size << "x" << options.patch_size << ", mask ratio "
            << options.mask_ratio << "\n";

  auto test_noise = torch::rand({test.size(0), options.num_patches()});
  const double loss_before = HeldOutLoss(model, test, test_noise);
  std::cout << "  held-out masked-patch loss before training: " << loss_before << "\n";

  std::vector<torch::Tensor> trainable;
  for (auto& p : model->parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  torch::optim::AdamW optimizer(
      trainable, torch::optim::AdamWOptions(args.lr).betas({0.9, 0.95}).weight_decay(0.05));
  auto start = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= args.steps; ++step) {
    auto index = torch::randint(train.size(0), {args.batch}, torch::kInt64);
    auto batch = train.index_select(0, index);
    auto flip = torch::rand({args.batch}) < 0.5;  // random horizontal flip
    batch = torch::where(flip.view({-1, 1, 1, 1}), batch.flip({3}), batch);
    optimizer.zero_grad();
    auto loss = model->forward(batch).loss;
    loss.backward();
    optimizer.step();
    if (step % 50 == 0 || step == args.steps) {
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("  step %4lld/%lld  loss %.4f  %.0f img/s\n", static_cast<long long>(step),
                  static_cast<long long>(args.steps), loss.item<double>(),
                  static_cast<double>(step * args.batch) / seconds);
      std::fflush(stdout);
    }
  }
  const double loss_after = HeldOutLoss(model, test, test_noise);
  std::printf("  held-out masked-patch loss after %lld steps: %.4f (before: %.4f)\n",
              static_cast<long long>(args.steps), loss_after, loss_before);

  // Reconstructions of the first test images.
  maestro::ThrowIfError(maestro::MakeDirectories(args.out));
  torch::NoGradGuard no_grad;
  model->eval();
  auto imgs = test.slice(0, 0, args.images);
  auto out = model->forward(imgs, test_noise.slice(0, 0, args.images));
  auto patch_mask = out.mask.unsqueeze(-1).expand({-1, -1, options.patch_dim()});  // (N, L, p*p)
  auto mask_img = model->unpatchify(patch_mask);                                   // 1 where masked
  auto recon = model->unpatchify(out.pred);
  auto masked_input = imgs * (1 - mask_img) + mask_img * ((0.5 - kMean) / kStd);  // gray patches
  auto pasted = imgs * (1 - mask_img) + recon * mask_img;
  auto rows = torch::stack({ToBytes(imgs), ToBytes(masked_input), ToBytes(recon), ToBytes(pasted)});
  // (4, N, 1, 28, 28) -> one picture, each image scaled x4 with a 4-pixel gap.
  const int64_t scale = 4, gap = 4, tile = 28 * scale;
  maestro::tools::Image picture;
  picture.width = args.images * (tile + gap) + gap;
  picture.height = 4 * (tile + gap) + gap;
  picture.channels = 1;
  picture.pixels.assign(static_cast<size_t>(picture.width * picture.height), 255);
  auto acc = rows.accessor<uint8_t, 5>();
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t n = 0; n < args.images; ++n) {
      for (int64_t y = 0; y < tile; ++y) {
        for (int64_t x = 0; x < tile; ++x) {
          int64_t py = gap + r * (tile + gap) + y, px = gap + n * (tile + gap) + x;
          picture.pixels[static_cast<size_t>(py * picture.width + px)] =
              acc[r][n][0][y / scale][x / scale];
        }
      }
    }
  }
  const std::string png_path = args.out + "/reconstruction.png";
  maestro::ThrowIfError(maestro::tools::WritePng(png_path, picture));
  auto state = maestro::checkpoint::StateDict(*model);
  maestro::ThrowIfError(state.status());
  const std::string weights_path = args.out + "/model.safetensors";
  maestro::ThrowIfError(maestro::checkpoint::WriteSafetensors(
      weights_path, {*state, {{"format", "pt"}, {"preset", "mae_vit_tiny_fmnist"}}}));
  std::cout << "  wrote " << png_path
            << " (rows: original, masked input, reconstruction, reconstruction + visible)\n"
            << "  wrote " << weights_path << " (official MAE key names)\n";
  if (!(loss_after < loss_before)) {
    std::cerr << "maestro-demo: training did not lower the held-out loss\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  maestro::FlagParser flags(
      "maestro-demo",
      "Pretrains the small MAE preset on Fashion-MNIST for a minute on the CPU and writes a\n"
      "reconstruction picture and the weights.");
  flags.Add("data-dir", &args.data_dir, "folder with the Fashion-MNIST IDX files (.gz)");
  flags.Add("out", &args.out, "output folder");
  flags.Add("steps", &args.steps, "training steps");
  flags.Add("batch", &args.batch, "images per step");
  flags.Add("lr", &args.lr, "AdamW learning rate");
  flags.Add("images", &args.images, "test images in the picture");
  flags.Add("seed", &args.seed, "random seed");
  flags.Add("mask-ratio", &args.mask_ratio, "fraction of patches masked");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  if (args.steps <= 0 || args.batch <= 0 || args.images <= 0 || args.images > 64) {
    std::cerr << "maestro-demo: --steps and --batch must be positive, --images in 1..64\n";
    return 2;
  }
  try {
    return Run(args);
  } catch (const std::exception& e) {
    std::cerr << "maestro-demo: " << e.what() << "\n";
    return 1;
  }
}
