// maestro: the command-line tool. Noun-verb, every verb with --help.
//
//   maestro viz recon --checkpoint DIR --out grid.png [--images N] [--mask-ratio R] [--seed S]
//   maestro eval recon --checkpoint DIR [--images N] [--mask-ratio R] [--seed S] [--out FILE]
//   maestro data ingest --format idx --src DIR --out ROOT [--split train|test] [--shards K]
//   maestro experiment preview|create|list|describe|cancel|continue|extend|results,
//   trial logs|compare,
//   worker list,
//   maestro dataset register|list (the coordinator's verbs)
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

#include "data_commands.h"
#include "experiment_commands.h"
#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/transform.h"
#include "maestro/engine/data.h"
#include "maestro/engine/heldout.h"
#include "maestro/engine/pretrained.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"
#include "maestro/tools/png.h"
#include "maestro/tools/text.h"

namespace {

using maestro::engine::PretrainedMae;

constexpr const char* kUsage = R"(usage: maestro <noun> <verb> [flags]

  viz recon     write the paper's Figure 2 triplets (masked input, reconstruction with the
                visible patches pasted back, original) for dataset images
  eval recon    masked-patch loss on held-out images against the mean-of-visible-patches
                baseline
  data ingest   write a dataset split into RocksDB shards with a manifest
  experiment preview FILE
                the trials an experiment file would launch (values, identities), every
                trial config checked against the trainer's schema
  experiment create FILE | list | describe ID | cancel ID
                submit to / read from maestro-coordinator (--coordinator HOST:PORT)
  experiment results ID [--history]
                one row per trial: swept values, final pretraining loss, evaluation top-1
                (a table, --format markdown|csv, or --json); --history: every progress
                record of every trial (CSV or --json)
  experiment continue ID
                queue an experiment's failed and canceled trials again (fresh restart
                budgets, resuming from their checkpoints)
  experiment extend ID --trials N
                add N trials to a random or asha search (its next draws)
  trial logs ID [-f]
                a trial's trainer output, every attempt; -f follows it
  trial compare A B
                the config keys two trials differ in, and both metric histories
  worker list   the workers: alive / lost, slots, running trials, build
  event list    the coordinator's event log (assignments, restarts with causes, ...)
  dataset register NAME --path DIR | --service ADDR
                name a dataset for experiment files (its manifests' content hashes)
  dataset list  the registered datasets
  cluster init --dir DIR [--host NAME_OR_IP ...]
                a cluster's credentials: its CA, the servers' certificates, the data-token
                key and the first admin token (printed once)
  cluster data-token --dir DIR --name NAME --out FILE
                a data token for running maestro-train against a data service by hand
  token create --role admin|user|viewer | list | revoke ID
                bearer tokens of people and tools (admin)
  worker enroll NAME
                a worker's own credential: a token for worker id NAME (admin)

Calls to the coordinator use TLS and a token: --ca FILE --token-file FILE on each verb, or
MAESTRO_CA and MAESTRO_TOKEN_FILE in the environment.

'maestro <noun> <verb> --help' explains each.
)";

struct CommonArgs {
  std::string checkpoint;
  std::string data_dir;  // default: the checkpoint's training data folder
  std::string split = "test";
  int64_t images = 16;
  double mask_ratio = 0;  // 0: the model's
  int64_t seed = 0;
  std::string out;
};

void AddCommon(maestro::FlagParser& flags, CommonArgs& args) {
  flags.Add("checkpoint", &args.checkpoint,
            "maestro checkpoint folder, or a Hugging Face ViTMAE folder");
  flags.Add("data-dir", &args.data_dir,
            "dataset folder: Fashion-MNIST IDX files, or a shard root for data.source shards "
            "(default: the checkpoint's training data, from its data service when it used one)");
  flags.Add("split", &args.split, "dataset split: test (held out) or train");
  flags.Add("images", &args.images, "how many images (the first ones of the split)");
  flags.Add("mask-ratio", &args.mask_ratio, "masking ratio (0: the model's)");
  flags.Add("seed", &args.seed, "seed of the mask noise");
}

using EvalBatch = maestro::engine::HeldOutImages;

// The first `count` images of the split (engine/heldout.h).
EvalBatch LoadImages(const PretrainedMae& pretrained, const CommonArgs& args, int64_t count) {
  maestro::engine::DataConfig data = pretrained.data;
  data.split = args.split;
  if (!args.data_dir.empty()) {
    data.path = args.data_dir;
    data.service.clear();
  }
  auto dataset = maestro::engine::OpenDataset(data);
  if (!dataset.ok()) throw maestro::Error(dataset.status());
  auto images =
      maestro::engine::LoadHeldOutImages(**dataset, pretrained.model->options(), pretrained.mean,
                                         pretrained.std, count, static_cast<uint64_t>(args.seed));
  if (!images.ok()) throw maestro::Error(images.status());
  return std::move(*images);
}

int VizRecon(int argc, char** argv) {
  CommonArgs args;
  args.out = "reconstruction.png";
  int64_t columns = 4;
  maestro::FlagParser flags(
      "maestro viz recon",
      "Writes MAE reconstructions of dataset images as the paper's Figure 2 triplets:\n"
      "masked input | reconstruction with the visible patches pasted back | original.\n"
      "With normalized-pixel targets each predicted patch is de-normalized with the\n"
      "mean and variance of its target patch, as the caption says.");
  AddCommon(flags, args);
  flags.Add("out", &args.out, "PNG file to write");
  flags.Add("columns", &columns, "triplets per row");
  args.images = 12;
  maestro::ParseFlagsOrExit(flags, argc - 2, argv + 2);
  if (args.checkpoint.empty())
    throw maestro::Error(maestro::InvalidArgumentError("--checkpoint is required"));
  if (args.images <= 0 || columns <= 0)
    throw maestro::Error(maestro::InvalidArgumentError("--images and --columns must be positive"));

  auto pretrained = maestro::engine::LoadPretrainedMae(args.checkpoint, args.mask_ratio);
  if (!pretrained.ok()) throw maestro::Error(pretrained.status());
  auto& model = pretrained->model;
  const auto& o = model->options();
  EvalBatch batch = LoadImages(*pretrained, args, args.images);
  torch::NoGradGuard no_grad;
  auto out = model->forward(batch.images, batch.noise);
  auto pred = out.pred;  // (N, L, p*p*C)
  if (o.norm_pix_loss) {
    auto target = model->patchify(batch.images);
    auto mean = target.mean(-1, true);
    auto var = target.var(-1, true, true);
    pred = pred * (var + 1e-6).sqrt() + mean;
  }
  auto mask =
      model->unpatchify(out.mask.unsqueeze(-1).expand({-1, -1, o.patch_dim()}));  // 1 = masked
  auto recon = model->unpatchify(pred);
  auto pasted = batch.images * (1 - mask) + recon * mask;
  auto mean = torch::tensor(pretrained->mean, torch::kFloat32).view({1, -1, 1, 1});
  auto std = torch::tensor(pretrained->std, torch::kFloat32).view({1, -1, 1, 1});
  auto to_bytes = [&](const torch::Tensor& x) {
    return ((x * std + mean) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
  };
  auto masked_input =
      to_bytes(batch.images) * (1 - mask).to(torch::kUInt8) + (mask * 128).to(torch::kUInt8);
  auto panels =
      torch::stack({masked_input, to_bytes(pasted), to_bytes(batch.images)});  // (3, N, C, S, S)

  const int64_t n = batch.images.size(0), s = o.img_size, c = o.in_chans;
  const int64_t scale = std::max<int64_t>(1, 112 / s), tile = s * scale, gap = 4, group_gap = 16;
  const int64_t rows = (n + columns - 1) / columns, cols = std::min(columns, n);
  const int64_t group_width = 3 * tile + 2 * gap;
  const double ratio = o.mask_ratio;
  std::vector<std::string> caption = {
      "MAE RECONSTRUCTIONS (" + pretrained->source + ", MASK RATIO " +
          std::to_string(static_cast<int>(ratio * 100 + 0.5)) + "%)",
      "EACH TRIPLET: MASKED INPUT | RECONSTRUCTION + VISIBLE PATCHES | ORIGINAL"};
  if (o.norm_pix_loss) {
    caption.push_back(
        "NORMALIZED-PIXEL TARGETS: PREDICTED PATCHES DE-NORMALIZED WITH EACH TARGET PATCH'S MEAN "
        "AND VARIANCE");
  }
  const int64_t text_scale = 2, line_height = 7 * text_scale;
  int64_t caption_width = 0;
  for (const auto& line : caption)
    caption_width = std::max(caption_width, maestro::tools::TextWidth(line, text_scale));
  maestro::tools::Image picture;
  picture.channels = c == 1 ? 1 : 3;
  picture.width = std::max(cols * group_width + (cols - 1) * group_gap, caption_width) + 2 * gap;
  const int64_t top = gap + static_cast<int64_t>(caption.size()) * line_height + gap;
  picture.height = top + rows * (tile + gap);
  picture.pixels.assign(static_cast<size_t>(picture.width * picture.height * picture.channels),
                        255);
  for (size_t i = 0; i < caption.size(); ++i) {
    maestro::tools::DrawText(picture, gap, gap + static_cast<int64_t>(i) * line_height, caption[i],
                             text_scale, 0);
  }
  auto acc = panels.accessor<uint8_t, 5>();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t gx = gap + (k % columns) * (group_width + group_gap),
                  gy = top + (k / columns) * (tile + gap);
    for (int64_t panel = 0; panel < 3; ++panel) {
      for (int64_t y = 0; y < tile; ++y) {
        for (int64_t x = 0; x < tile; ++x) {
          const int64_t px = gx + panel * (tile + gap) + x, py = gy + y;
          for (int64_t ch = 0; ch < picture.channels; ++ch) {
            picture.pixels[static_cast<size_t>((py * picture.width + px) * picture.channels + ch)] =
                acc[panel][k][std::min(ch, c - 1)][y / scale][x / scale];
          }
        }
      }
    }
  }
  maestro::ThrowIfError(maestro::tools::WritePng(args.out, picture));
  std::cout << "wrote " << args.out << ": " << n << " triplets from " << pretrained->source << "\n";
  return 0;
}

int EvalRecon(int argc, char** argv) {
  CommonArgs args;
  args.images = 10000;
  maestro::FlagParser flags(
      "maestro eval recon",
      "Masked-patch reconstruction loss of a pretrained MAE on held-out images with\n"
      "fixed mask noise, against a baseline that predicts every masked patch as the\n"
      "mean of the image's visible patches (in the loss's target space).");
  AddCommon(flags, args);
  flags.Add("out", &args.out, "also write the figures as JSON to this file");
  maestro::ParseFlagsOrExit(flags, argc - 2, argv + 2);
  if (args.checkpoint.empty())
    throw maestro::Error(maestro::InvalidArgumentError("--checkpoint is required"));
  auto pretrained = maestro::engine::LoadPretrainedMae(args.checkpoint, args.mask_ratio);
  if (!pretrained.ok()) throw maestro::Error(pretrained.status());
  auto& model = pretrained->model;
  EvalBatch batch = LoadImages(*pretrained, args, args.images);
  const auto figures = maestro::engine::MeasureMaskedLoss(model, batch, /*with_baseline=*/true);
  const double model_loss = figures.model_loss;
  const double baseline_loss = figures.baseline_loss;
  const int64_t n = batch.images.size(0);
  std::printf(
      "%s on %lld %s images (mask ratio %.2f, seed %lld):\n  masked-patch loss %.4f\n"
      "  mean-of-visible baseline %.4f\n  ratio %.3f\n",
      pretrained->source.c_str(), static_cast<long long>(n), args.split.c_str(),
      model->options().mask_ratio, static_cast<long long>(args.seed), model_loss, baseline_loss,
      model_loss / baseline_loss);
  if (!args.out.empty()) {
    maestro::Json result(maestro::Json::Object{{"checkpoint", args.checkpoint},
                                               {"source", pretrained->source},
                                               {"split", args.split},
                                               {"images", n},
                                               {"mask_ratio", model->options().mask_ratio},
                                               {"mask_seed", args.seed},
                                               {"masked_patch_loss", model_loss},
                                               {"mean_of_visible_baseline_loss", baseline_loss},
                                               {"ratio", model_loss / baseline_loss}});
    maestro::ThrowIfError(maestro::WriteFileAtomic(args.out, result.Dump() + "\n"));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cout << kUsage;
    return argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") ? 0 : 2;
  }
  const std::string noun = argv[1], verb = argv[2];
  try {
    if (noun == "viz" && verb == "recon") return VizRecon(argc, argv);
    if (noun == "eval" && verb == "recon") return EvalRecon(argc, argv);
    if (noun == "data" && verb == "ingest") return maestro::tools::DataIngest(argc, argv);
    if (noun == "experiment" && verb == "preview")
      return maestro::tools::ExperimentPreview(argc, argv);
#ifdef MAESTRO_HAVE_COORDINATOR_RPC
    if (noun == "experiment" && verb == "create")
      return maestro::tools::ExperimentCreate(argc, argv);
    if (noun == "experiment" && verb == "list") return maestro::tools::ExperimentList(argc, argv);
    if (noun == "experiment" && verb == "describe")
      return maestro::tools::ExperimentDescribe(argc, argv);
    if (noun == "experiment" && verb == "cancel")
      return maestro::tools::ExperimentCancel(argc, argv);
    if (noun == "experiment" && verb == "results")
      return maestro::tools::ExperimentResults(argc, argv);
    if (noun == "experiment" && verb == "continue")
      return maestro::tools::ExperimentContinue(argc, argv);
    if (noun == "experiment" && verb == "extend")
      return maestro::tools::ExperimentExtend(argc, argv);
    if (noun == "trial" && verb == "logs") return maestro::tools::TrialLogs(argc, argv);
    if (noun == "trial" && verb == "compare") return maestro::tools::TrialCompare(argc, argv);
    if (noun == "worker" && verb == "list") return maestro::tools::WorkerList(argc, argv);
    if (noun == "worker" && verb == "enroll") return maestro::tools::WorkerEnroll(argc, argv);
    if (noun == "cluster" && verb == "init") return maestro::tools::ClusterInit(argc, argv);
    if (noun == "cluster" && verb == "data-token") {
      return maestro::tools::ClusterDataToken(argc, argv);
    }
    if (noun == "token" && verb == "create") return maestro::tools::TokenCreate(argc, argv);
    if (noun == "token" && verb == "list") return maestro::tools::TokenList(argc, argv);
    if (noun == "token" && verb == "revoke") return maestro::tools::TokenRevoke(argc, argv);
    if (noun == "event" && verb == "list") return maestro::tools::EventList(argc, argv);
    if (noun == "dataset" && verb == "register") return maestro::tools::DatasetRegister(argc, argv);
    if (noun == "dataset" && verb == "list") return maestro::tools::DatasetList(argc, argv);
#endif
  } catch (const maestro::Error& e) {
    std::cerr << "maestro " << noun << " " << verb << ": " << e.status().ToString() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "maestro " << noun << " " << verb << ": " << e.what() << "\n";
    return 1;
  }
  std::cerr << "maestro: unknown command '" << noun << " " << verb << "'\n\n" << kUsage;
  return 2;
}
