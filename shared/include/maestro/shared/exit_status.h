// The exit statuses of maestro-train: the contract between a trainer, the worker daemon that
// reports its exit and the coordinator that decides what follows (retry, queue again, fail).
// Here, in shared/, so that every side (the trainer, its data-parallel communicators, the
// worker daemon, the coordinator) uses the one definition; docs/training.md lists them.
#pragma once

namespace maestro {

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

}  // namespace maestro
