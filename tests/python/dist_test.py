"""Data-parallel training on the CPU with real ranks: `mpirun -np 2 maestro-train`.

1. Equivalence: 2 ranks with per-rank batch B train N steps; a single process trains N steps
   with batch 2B on the same samples. Every parameter tensor: ||p2 - p1|| / ||p1|| < 1e-5.
   After every step the two ranks' parameters are bitwise identical (their per-step
   checksums, MAESTRO_PARAM_CHECKSUMS, are equal).
2. Exact resume with 2 ranks and a killed rank: a gang (dist.timeout_s 5) whose rank 1 is
   killed with SIGKILL after a checkpoint ends within those 5 s (rank 0, left waiting in
   all-reduce when mpirun tells it to stop, exits with a clear error); restarted with
   --resume auto it ends with parameters bitwise equal to an uninterrupted 2-rank run's.
3. A peer that stops answering without dying (SIGSTOP, so mpirun does not end the job) while
   rank 0 waits in all-reduce: rank 0 exits with the retryable status and a clear timeout
   error within dist.timeout_s. 3b: the same for a peer killed with SIGKILL, mpirun told not
   to end the job (--mca orte_abort_on_non_zero_status 0) so that only the timeout can.
4. mpirun's ranks of a CUDA run (run.device cuda) meet in a TCPStore whose address rank 0
   shares through MPI; without a GPU they then stop with the documented message.
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from dist_util import MPI_ENV, expect_equivalent, rank_pid, train_args, weights
from run_util import Checker, wait_for_checkpoint

STEPS = 8


def mpirun(n, args):
    return ["mpirun", "-np", str(n), "--bind-to", "none", *args]


def ended(pid):
    """Whether process `pid` has exited (gone, or a zombie its parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].startswith("Z")
    except OSError:
        return True


def signal_rank_1(command, out_dir, signum, env, until_rank_0=False):
    """Runs `command` (an mpirun gang writing to `out_dir`), sends `signum` to rank 1 once
    checkpoint 4 is committed, then waits for the gang to end, or with `until_rank_0` for rank 0
    alone to exit (mpirun may never end then), and ends whatever is left. (mpirun's exit status,
    seconds from the signal to that end, the gang's output)."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            wait_for_checkpoint(proc, out_dir, 4, timeout=300)
            survivor, victim = rank_pid(out_dir, 0), rank_pid(out_dir, 1)
            signalled_at = time.time()
            os.kill(victim, signum)
            if until_rank_0:
                while not ended(survivor) and time.time() - signalled_at < 60:
                    time.sleep(0.02)
                took = time.time() - signalled_at
                # Rank 0's last lines travel through mpirun's output forwarding: let them
                # arrive (the log stops growing) before mpirun is ended below, or they are lost
                # (seen once under make test -j2: the survivor's timeout line missing).
                size, still = -1, time.time()
                while time.time() - still < 0.5 and time.time() - signalled_at < took + 5:
                    now = os.fstat(log.fileno()).st_size
                    if now != size:
                        size, still = now, time.time()
                    time.sleep(0.05)
            else:
                proc.wait(timeout=120)
                took = time.time() - signalled_at
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        return proc.returncode, took, log.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    if shutil.which("mpirun") is None:
        print("FAIL  mpirun is not installed (tools/bootstrap.sh installs openmpi-bin)")
        return 1

    # 1. Equivalence.
    single, double = os.path.join(args.dir, "single"), os.path.join(args.dir, "two-ranks")
    r1 = subprocess.run(train_args(args.train, single, 64, STEPS), capture_output=True, text=True, timeout=600)
    env = dict(MPI_ENV, MAESTRO_PARAM_CHECKSUMS=os.path.join(args.dir, "checksums"))
    r2 = subprocess.run(mpirun(2, train_args(args.train, double, 32, STEPS)), capture_output=True, text=True,
                        env=env, timeout=600)
    check.expect(r1.returncode == 0 and r2.returncode == 0,
                 f"one process (batch 64) and mpirun -np 2 (batch 32 each) train {STEPS} steps "
                 f"(exits {r1.returncode}, {r2.returncode}){'' if r2.returncode == 0 else ': ' + r2.stdout[-1500:] + r2.stderr[-1500:]}")
    if r1.returncode == 0 and r2.returncode == 0:
        expect_equivalent(check, single, double, os.path.join(args.dir, "checksums"), STEPS, "ranks")
        check.expect("data-parallel: 2 ranks (mpi)" in r2.stdout and r2.stdout.count("completed ") == 1,
                     "rank 0 alone prints (data-parallel: 2 ranks (mpi), one completion line)")

    # 2. Exact resume with 2 ranks: rank 1 killed after checkpoint 4, the gang restarted.
    steps, short_timeout = 12, ["--set", "dist.timeout_s=5"]
    full, killed = os.path.join(args.dir, "full"), os.path.join(args.dir, "killed")
    r = subprocess.run(mpirun(2, train_args(args.train, full, 32, steps, short_timeout)), capture_output=True,
                       text=True, env=MPI_ENV, timeout=600)
    check.expect(r.returncode == 0, f"an uninterrupted 2-rank run of {steps} steps (exit {r.returncode})")
    env = dict(MPI_ENV, MAESTRO_PARAM_CHECKSUMS=os.path.join(args.dir, "killed-sums"))
    code, gang_end, killed_output = signal_rank_1(
        mpirun(2, train_args(args.train, killed, 32, steps, short_timeout)), killed, signal.SIGKILL, env)
    message = next((x for x in killed_output.splitlines() if "still waiting for a peer" in x), "")
    check.expect(code != 0 and gang_end < 5 and "error: rank 0: all-reduce" in message,
                 f"killing rank 1 ends the gang within dist.timeout_s (5 s): the surviving rank exits "
                 f"with a clear error ({gang_end:.1f} s after the kill, mpirun exit {code}): {message}")
    r = subprocess.run(mpirun(2, train_args(args.train, killed, 32, steps, [*short_timeout, "--resume", "auto"])),
                       capture_output=True, text=True, env=MPI_ENV, timeout=600)
    resumed = r.returncode == 0 and "resumed from" in r.stdout
    same = resumed and all(np.array_equal(weights(full, steps)[k], v) for k, v in weights(killed, steps).items())
    check.expect(resumed and same,
                 "the restarted gang resumes from the checkpoint and ends bitwise equal to the uninterrupted run")

    # 3. A peer that stops answering (SIGSTOP: alive, so mpirun does not end the job) while
    # rank 0 waits in all-reduce: rank 0's watchdog ends it with a clear error within
    # dist.timeout_s, and mpirun then ends the gang.
    timeout_dir = os.path.join(args.dir, "timeout")
    code, took, output = signal_rank_1(
        mpirun(2, train_args(args.train, timeout_dir, 32, 100000, ["--set", "dist.timeout_s=5"])), timeout_dir,
        signal.SIGSTOP, MPI_ENV)
    line = next((x for x in output.splitlines() if "did not complete" in x), output[-300:])
    check.expect("did not complete within 5 s" in output and code != 0 and took < 30,
                 f"a silent peer: rank 0 exits with a clear timeout error and the gang ends "
                 f"({took:.1f} s after the peer stopped): {line}")
    # 3b. A rank SIGKILLed while the other waits in all-reduce, with mpirun told not to end the
    # job on a rank's death, so that only the timeout can end the survivor: rank 0 exits with
    # the timeout error about dist.timeout_s after the kill (its wait began when it entered the
    # next all-reduce, just after the kill; the watchdog looks every 0.1 s). Open MPI 4.1's
    # mpirun then waits forever with no rank left (why the worker keeps mpirun's default, which
    # ends the job at a rank's death: section 2), so the test ends it.
    killed_dir = os.path.join(args.dir, "killed-timeout")
    command = mpirun(2, train_args(args.train, killed_dir, 32, 100000, ["--set", "dist.timeout_s=5"]))
    command[1:1] = ["--mca", "orte_abort_on_non_zero_status", "0"]
    _, took, output = signal_rank_1(command, killed_dir, signal.SIGKILL, MPI_ENV, until_rank_0=True)
    line = next((x for x in output.splitlines() if "did not complete" in x), "")
    check.expect("error: rank 0: all-reduce did not complete within 5 s (dist.timeout_s)" in line and 3.0 < took < 6.5,
                 f"a rank killed while the other waits in all-reduce (mpirun not ending the job): the survivor "
                 f"exits with the timeout error {took:.1f} s after the kill (dist.timeout_s 5): {line}")

    # 4. mpirun's ranks of a CUDA run: rank 0 serves a TCPStore on a port the kernel picked and
    # shares its host and port through MPI; both ranks meet there (each records what it saw),
    # and on this CPU-only machine they then stop with the documented message (NCCL needs GPUs).
    cuda_dir, record = os.path.join(args.dir, "cuda"), os.path.join(args.dir, "mpirun-rendezvous")
    r = subprocess.run(mpirun(2, train_args(args.train, cuda_dir, 32, 4, ["--set", "run.device=cuda"])),
                       capture_output=True, text=True, env=dict(MPI_ENV, MAESTRO_RENDEZVOUS_RECORD=record),
                       timeout=120)
    seen = []
    for rank in (0, 1):
        if os.path.exists(f"{record}.rank-{rank}.json"):
            with open(f"{record}.rank-{rank}.json") as f:
                seen.append(json.load(f))
    check.expect(len(seen) == 2 and [s["rank"] for s in seen] == [0, 1]
                 and all(s["world_size"] == 2 and s["launcher"] == "an mpirun-launched" for s in seen)
                 and seen[0]["master_port"] > 0
                 and len({(s["master_addr"], s["master_port"]) for s in seen}) == 1
                 and seen[0]["peers"] == seen[1]["peers"] and len(set(seen[0]["peers"])) == 2,
                 f"mpirun -np 2 with run.device cuda: the ranks meet in a TCPStore at the address rank 0 "
                 f"shared through MPI: {seen}")
    message = next((x for x in (r.stdout + r.stderr).splitlines() if "needs CUDA GPUs" in x), "")
    check.expect(r.returncode != 0 and "which this machine lacks" in message,
                 f"... and on this CPU-only machine stop with the documented message (exit {r.returncode}): "
                 f"{message[:200]}")
    print(f"dist test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
