// maestro-train: runs one training job in this process.
//
//   maestro-train pretrain --config run.yaml [--set key=value ...] [--resume auto|DIR]
//
// Exit statuses: worker/engine/include/maestro/engine/exit_status.h (docs/training.md).
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "maestro/engine/config.h"
#include "maestro/engine/exit_status.h"
#include "maestro/engine/host_memory.h"
#include "maestro/engine/trainer.h"

namespace {

constexpr const char* kUsage =
    R"(usage: maestro-train pretrain [--config FILE] [--set KEY=VALUE ...] [--resume auto|DIR]
       maestro-train pretrain --print-config [--config FILE] [--set KEY=VALUE ...]

Pretrains a masked autoencoder (He et al. 2021) in this process.

  --config FILE      YAML config (docs/training.md lists every key); defaults when absent
  --set KEY=VALUE    override one dotted key, e.g. --set optim.epochs=10 (repeatable)
  --resume auto      continue from the latest valid checkpoint (fresh start when none)
  --resume DIR       continue from this checkpoint folder
  --print-config     print the resolved config as JSON and exit

Exit status: 0 completed, 2 permanent failure (bad config or data, non-finite loss),
3 preempted (SIGTERM/SIGINT: checkpoint written), 4 retryable failure.
)";

}  // namespace

int main(int argc, char** argv) {
  using maestro::engine::kExitPermanentFailure;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::cout << kUsage;
    return argc < 2 ? kExitPermanentFailure : 0;
  }
  if (std::string(argv[1]) != "pretrain") {
    std::cerr << "maestro-train: unknown job kind '" << argv[1] << "' (pretrain)\n" << kUsage;
    return kExitPermanentFailure;
  }
  std::string config_path;
  std::vector<std::string> overrides;
  maestro::engine::TrainOptions options;
  bool print_config = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "maestro-train: " << flag << " needs a value\n";
        std::exit(kExitPermanentFailure);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--config") {
      config_path = value(arg);
    } else if (arg == "--set") {
      overrides.push_back(value(arg));
    } else if (arg == "--resume") {
      options.resume = value(arg);
    } else if (arg == "--print-config") {
      print_config = true;
    } else {
      std::cerr << "maestro-train: unknown argument '" << arg << "' (see --help)\n";
      return kExitPermanentFailure;
    }
  }
  auto config = maestro::engine::LoadTrainConfig(config_path, overrides);
  if (!config.ok()) {
    std::cerr << "maestro-train: config: " << config.status().message() << "\n";
    return kExitPermanentFailure;
  }
  if (print_config) {
    std::cout << config->ToJson().Dump() << "\n";
    return 0;
  }
  maestro::engine::TuneHostAllocatorForTraining();
  return maestro::engine::RunPretraining(*config, options, std::cout);
}
