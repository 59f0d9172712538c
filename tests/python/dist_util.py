"""Helpers of the data-parallel tests (dist_test.py, dist_worker_test.py): the environment
mpirun needs here, checkpoint weights, finding a rank's process, and comparing two runs'
parameters."""
import os
import time

import numpy as np
from safetensors.numpy import load_file

from run_util import checkpoint_path, live_processes

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
