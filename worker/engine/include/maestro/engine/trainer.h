// One training process: MAE pretraining, or fine-tuning / linear probing of a pretrained
// encoder (config.job): data stream, model, optimizer, schedule, evaluation, checkpoints,
// resume, signals, progress, metrics and the final result record. Runs on this process's
// device; data-parallel ranks come from the launcher (docs/training.md). Returns an exit
// status of exit_status.h.
#pragma once

#include <iosfwd>
#include <string>

#include "maestro/shared/train_config.h"
#include "maestro/shared/status.h"

namespace maestro::engine {

inline constexpr int64_t kTrainerStateVersion = 1;
// Versions of the algorithms a checkpoint's data position depends on; a resume with other
// versions would not continue the same stream.
inline constexpr int64_t kSamplerVersion = 1;
inline constexpr int64_t kAugmentVersion = 2;  // 2: Pillow's exact bicubic resize
// JPEG decoding (dataloader/jpeg.h: region decode, DCT scaling choice, conversion to RGB).
inline constexpr int64_t kDecoderVersion = 1;

struct TrainOptions {
  // "" (start fresh; refuse when the checkpoint location already holds checkpoints), "auto"
  // (the latest valid checkpoint, else fresh) or a checkpoint folder.
  std::string resume;
};

// Runs the job to the end (or max_steps, or a signal). `out` receives the resolved config,
// progress and evaluation lines and warnings; errors go there too, prefixed "error:". A
// completed run writes <output_dir>/result.json.
int RunTraining(const TrainConfig& config, const TrainOptions& options, std::ostream& out);

// Fencing of restarted trials (docs/orchestration.md): when the environment has MAESTRO_ATTEMPT
// (this process's attempt) and MAESTRO_ATTEMPT_FENCE (a file holding the trial's latest attempt,
// written by the worker daemon before it starts an attempt), a checkpoint or result is committed
// only while no later attempt has started: FAILED_PRECONDITION otherwise. OK without them.
Status CheckAttemptFence();

// SIGTERM and SIGINT make a running RunTraining finish its step, checkpoint and return
// kExitPreempted. Installed by RunTraining; exposed for tests.
void InstallStopSignalHandlers();

}  // namespace maestro::engine
