// Exit statuses of maestro-train: the taxonomy the worker daemon reads to decide what to do.
#pragma once

namespace maestro::engine {

enum ExitStatus : int {
  kExitCompleted = 0,         // the run reached its end; a final checkpoint is written
  kExitPermanentFailure = 2,  // retrying cannot help: bad flags or config, data that does not
                              // match the checkpoint, a non-finite loss. The message says which;
                              // the last good checkpoint is kept.
  kExitPreempted = 3,         // SIGTERM/SIGINT: the current step finished, a checkpoint was
                              // written; resume with --resume auto
  kExitRetryableFailure = 4,  // I/O or device errors and anything unexpected: restart from
                              // the last checkpoint
};

}  // namespace maestro::engine
