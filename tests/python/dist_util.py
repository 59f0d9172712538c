"""Helpers of the data-parallel tests (dist_test.py, dist_worker_test.py, slurm_test.py): the
environment mpirun needs here, a small training command, checkpoint weights, finding a rank's
process, and comparing two runs' parameters."""
import os
import time

import numpy as np
from safetensors.numpy import load_file

from run_util import checkpoint_path, live_processes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# As root mpirun needs both confirmations; this machine's 2 cores are no limit on ranks.
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")


def weights(out, step):
    return load_file(os.path.join(checkpoint_path(out, step), "model.safetensors"))


def rank_pid(marker, rank, timeout=60):
    """The pid of the maestro-train process of MPI rank `rank` whose command line holds
    `marker` (its output folder or config file)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid, cmd, environ in live_processes():
            if ("maestro-train" in cmd and marker in cmd
                    and f"OMPI_COMM_WORLD_RANK={rank}\0".encode() in environ):
                return pid
        time.sleep(0.1)
    raise RuntimeError(f"no rank {rank} process for {marker}")


def parameter_errors(reference, other):
    """{tensor: ||other - reference|| / ||reference||} for every parameter tensor."""
    def relative(x, y):
        return float(np.linalg.norm(y.astype(np.float64) - x) / max(np.linalg.norm(x), 1e-30))

    return {k: relative(a, other[k]) for k, a in reference.items()}


def train_args(train, out, batch, steps, extra=()):
    """A small pretraining run of `steps` optimizer steps at per-rank batch `batch` (one thread,
    a progress line every 2 steps, a checkpoint every 4)."""
    return [train, "pretrain", "--config", os.path.join(ROOT, "configs", "fmnist_pretrain.yaml"),
            "--set", f"run.output_dir={out}", "--set", f"optim.batch_size={batch}",
            "--set", f"optim.max_steps={steps}", "--set", "run.threads=1",
            "--set", "data.num_workers=1", "--set", "optim.warmup_epochs=0.01",
            "--set", "log.interval_steps=2", "--set", "checkpoint.interval_steps=4", *extra]


def expect_close(check, single, ranks, steps, what="every parameter tensor"):
    """The data-parallel run in `ranks` ends within 1e-5 relative per tensor of the single
    process in `single` (both at checkpoint `steps`)."""
    a, b = weights(single, steps), weights(ranks, steps)
    errors = parameter_errors(a, b)
    worst = max(errors, key=errors.get)
    check.expect(set(a) == set(b) and errors[worst] < 1e-5,
                 f"{what} within 1e-5 relative of the single process's (worst "
                 f"{errors[worst]:.2e}, {worst}; {len(a)} tensors)")


def expect_equivalent(check, single, ranks, checksums, steps, what):
    """The landed equivalence criterion: the data-parallel run in `ranks` ends within 1e-5
    relative per tensor of the single process in `single`, and its two ranks' per-step
    checksums (MAESTRO_PARAM_CHECKSUMS=`checksums`) are equal after every step."""
    expect_close(check, single, ranks, steps)
    sums = []
    for rank in (0, 1):
        with open(f"{checksums}.rank{rank}") as f:
            sums.append(f.read().split("\n"))
    check.expect(sums[0] == sums[1] and len(sums[0]) == steps + 1,
                 f"after every step both {what} hold bitwise identical parameters "
                 f"({len(sums[0]) - 1} checksums equal)")
