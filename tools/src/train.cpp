// maestro-train: runs one training job in this process.
//
//   maestro-train pretrain|finetune|linprobe --config run.yaml [--set key=value ...]
//                 [--resume auto|DIR]
//
// Exit statuses: shared/include/maestro/shared/exit_status.h (docs/training.md).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "maestro/shared/train_config.h"
#include "maestro/engine/exit_status.h"
#include "maestro/engine/host_memory.h"
#include "maestro/engine/trainer.h"

namespace {

constexpr const char* kUsage =
    R"(usage: maestro-train JOB [--config FILE] [--set KEY=VALUE ...] [--resume auto|DIR]
       maestro-train JOB --print-config [--config FILE] [--set KEY=VALUE ...]

Runs one training job in this process. JOB is one of
  pretrain   masked-autoencoder pretraining (He et al. 2021, Table 8)
  finetune   end-to-end fine-tuning of a pretrained encoder (Table 9): layer-wise lr decay,
             RandAugment, mixup/cutmix, label smoothing, random erasing, drop path;
             classify.tune_blocks=k tunes only the last k blocks (partial fine-tuning)
  linprobe   linear probing (Table 10): frozen encoder, BatchNorm + linear head, LARS
finetune and linprobe need classify.pretrained (a checkpoint, a Hugging Face ViTMAE folder,
a .safetensors file, or none) and classify.num_classes; they evaluate top-1/top-5 on
classify.eval_split after every epoch and write result.json when done.

  --config FILE      YAML config (docs/training.md lists every key); the job's defaults when absent
  --set KEY=VALUE    override one dotted key, e.g. --set optim.epochs=10 (repeatable)
  --resume auto      continue from the latest valid checkpoint (fresh start when none)
  --resume DIR       continue from this checkpoint folder
  --print-config     print the resolved config as JSON and exit

Exit status: 0 completed, 2 permanent failure (bad config or data, non-finite loss),
3 preempted (SIGTERM/SIGINT/SIGUSR1: checkpoint written), 4 retryable failure.
)";

// A trainer started by a worker daemon stops itself when that daemon stops renewing its lease
// (frozen, killed, cut off): the coordinator declares such a worker lost after its worker
// timeout and starts the trial elsewhere, so this process must be gone by then, whether it is
// the worker's child or an mpirun rank. The worker touches MAESTRO_LEASE_FILE at every answer
// from the coordinator; past half of MAESTRO_LEASE_TIMEOUT_MS without a touch this process
// sends itself SIGTERM (a checkpoint, exit 3), past 90% it exits at once.
void StartLeaseWatchdog() {
  const char* file = std::getenv("MAESTRO_LEASE_FILE");
  const char* timeout = std::getenv("MAESTRO_LEASE_TIMEOUT_MS");
  if (file == nullptr || *file == '\0' || timeout == nullptr) return;
  const int64_t timeout_ms = std::atoll(timeout);
  if (timeout_ms <= 0) return;
  std::thread([path = std::string(file), timeout_ms] {
    bool asked = false;
    while (true) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::min<int64_t>(200, timeout_ms / 20)));
      struct stat info {};
      int64_t age_ms = 0;
      if (stat(path.c_str(), &info) == 0) {
        timespec now{};
        clock_gettime(CLOCK_REALTIME, &now);
        age_ms = (now.tv_sec - info.st_mtim.tv_sec) * 1000 +
                 (now.tv_nsec - info.st_mtim.tv_nsec) / 1000000;
      } else {
        age_ms = timeout_ms;  // the lease is gone: so is the worker's claim on this trial
      }
      if (age_ms >= timeout_ms * 9 / 10) {
        std::fprintf(stderr,
                     "maestro-train: the worker's lease is %lld ms old (its timeout %lld ms): "
                     "exiting now, before the trial starts elsewhere\n",
                     static_cast<long long>(age_ms), static_cast<long long>(timeout_ms));
        std::_Exit(maestro::engine::kExitPreempted);
      }
      if (age_ms >= timeout_ms / 2 && !asked) {
        asked = true;
        std::fprintf(stderr,
                     "maestro-train: the worker daemon has not renewed its lease for %lld ms: "
                     "stopping at a checkpoint\n",
                     static_cast<long long>(age_ms));
        kill(getpid(), SIGTERM);
      }
    }
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  using maestro::engine::kExitPermanentFailure;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::cout << kUsage;
    return argc < 2 ? kExitPermanentFailure : 0;
  }
  const std::string job = argv[1];
  if (job != maestro::engine::kJobPretrain && job != maestro::engine::kJobFinetune &&
      job != maestro::engine::kJobLinprobe) {
    std::cerr << "maestro-train: unknown job kind '" << job << "' (pretrain, finetune, linprobe)\n"
              << kUsage;
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
  auto config = maestro::engine::LoadTrainConfig(config_path, overrides, job);
  if (!config.ok()) {
    std::cerr << "maestro-train: config: " << config.status().message() << "\n";
    return kExitPermanentFailure;
  }
  if (print_config) {
    std::cout << config->ToJson().Dump() << "\n";
    return 0;
  }
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    // A rank dies with its mpirun (killed with its worker, say): no orphan rank keeps waiting.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return maestro::engine::kExitRetryableFailure;
  }
  maestro::engine::TuneHostAllocatorForTraining();
  StartLeaseWatchdog();
  return maestro::engine::RunTraining(*config, options, std::cout);
}
