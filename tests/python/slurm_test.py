"""maestro-train under a real Slurm: two nodes, each a network namespace (tools/slurm_cluster.sh).

1. The cluster: both nodes idle; a 2-node step's tasks see SLURM_PROCID 0 and 1 on node1 and
   node2, each on its own namespace address, and SLURM_JOB_NODELIST names both.
2. The first multi-node data-parallel run: a batch job of 2 nodes x 1 task runs
   `mpirun -np 2 --map-by node maestro-train` (Open MPI starts its daemons through srun; the
   ranks talk TCP over the namespaces' addresses). Its final parameters are within 1e-5
   relative per tensor of one process at the double batch, and both ranks hold bitwise equal
   parameters after every step.
3. Preemption the Slurm way: SIGUSR1 to a running training job's batch shell
   (`scancel --signal=USR1 --batch`, what `--signal=B:USR1@N` sends) reaches the trainer through
   deploy/slurm/requeue.sh and srun, as in the shipped batch scripts; the trainer checkpoints and exits 3, the job requeues itself
   (`scontrol requeue`), runs again with --resume auto under the same job id (one job for the
   run, never two) and ends with parameters bitwise equal to an uninterrupted run's.
1b. `srun -N2 -n2 maestro-train` of a CUDA run: its two ranks take their places from SLURM_*
   and meet at node1's address, then stop with the documented no-GPU message.
4. `sbatch --test-only` accepts every script in deploy/slurm/ (nodes and partition set to the
   test cluster's).
5. A node lost under a running 2-node job (tools/slurm_cluster.sh fail: every process in its
   namespace killed): the gang fails, deploy/slurm/requeue.sh requeues the job and counts the
   failure; the node comes back (revive: its slurmd started again) and the same job resumes
   from its last checkpoint, ending bitwise equal to an uninterrupted 2-node run.
The cluster comes up and goes down within the test. Exit status 0 when everything holds.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from dist_util import MPI_ENV, ROOT, expect_equivalent, train_args, weights
from run_util import Checker, checkpoint_path

CLUSTER = os.path.join(ROOT, "tools", "slurm_cluster.sh")


def cluster_up(folder, cluster):
    """`folder` emptied and the test cluster brought up in `cluster` (under it): (the result of
    `up`, an environment whose SLURM_CONF is the cluster's)."""
    # A run killed before its `down` left daemons behind (their pid files are in the folder).
    if os.path.isdir(cluster):
        subprocess.run([CLUSTER, "down", cluster], capture_output=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    up = subprocess.run([CLUSTER, "up", cluster], capture_output=True, text=True, timeout=120)
    return up, dict(os.environ, SLURM_CONF=os.path.join(cluster, "slurm.conf"))


def cluster_down(cluster, env):
    """Every job of this user canceled, then the test cluster taken down."""
    try:
        subprocess.run(["scancel", "--me"], env=env, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        pass  # no controller to ask: nothing runs
    down = subprocess.run([CLUSTER, "down", cluster], capture_output=True, text=True, timeout=120)
    if down.returncode != 0:
        print(f"warning: {CLUSTER} down: {down.stderr.strip()[-300:]}")
REQUEUE = os.path.join(ROOT, "deploy", "slurm", "requeue.sh")
STEPS = 8
SUBNET = "10.233.0.0/24"


def quoted(words):
    return " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)


def write_script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/bash\n" + body)
    os.chmod(path, 0o755)


def job_state(env, job):
    """The job's state from scontrol (this test cluster has no accounting database)."""
    r = subprocess.run(["scontrol", "show", "job", str(job)], capture_output=True, text=True, env=env)
    for word in r.stdout.split():
        if word.startswith("JobState="):
            return word.split("=", 1)[1]
    return ""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    cluster = os.path.join(args.dir, "cluster")
    check = Checker()
    up, env = cluster_up(args.dir, cluster)
    try:
        check.expect(up.returncode == 0, f"the test cluster comes up: {up.stderr.strip()[-300:]}")
        if up.returncode != 0:
            return 1

        # 1. Two nodes, two namespaces.
        r = subprocess.run(["srun", "-N2", "-n2", "bash", "-c",
                            "echo $SLURM_PROCID $SLURMD_NODENAME $SLURM_JOB_NODELIST "
                            "$(ip -4 -o addr show eth0 | awk '{print $4}')"],
                           capture_output=True, text=True, env=env, timeout=60)
        lines = sorted(r.stdout.split("\n")[:-1])
        check.expect(lines == ["0 node1 node[1-2] 10.233.0.11/24", "1 node2 node[1-2] 10.233.0.12/24"],
                     f"a 2-node step runs one task per node, each on its own address: {lines} {r.stderr[-200:]}")

        # 1b. srun's tasks as ranks: a CUDA run's two ranks meet at node1's address (the name does
        #     not resolve here: scontrol's NodeAddr), then stop with the documented message.
        record = os.path.join(args.dir, "rendezvous")
        r = subprocess.run(["srun", "-N2", "-n2", *train_args(args.train, os.path.join(args.dir, "cuda"), 32, 4),
                            "--set", "run.device=cuda"], capture_output=True, text=True,
                           env=env | {"MAESTRO_RENDEZVOUS_RECORD": record}, timeout=120)
        seen = []
        for rank in (0, 1):
            path = f"{record}.rank-{rank}.json"
            seen.append(json.load(open(path)) if os.path.exists(path) else {})
        check.expect(all(x.get("master_addr") == "10.233.0.11" and x.get("world_size") == 2
                         and x.get("launcher", "").startswith("an srun-launched") for x in seen)
                     and [x.get("rank") for x in seen] == [0, 1]
                     and "needs CUDA GPUs, which this machine lacks" in r.stdout,
                     f"srun -N2 -n2 maestro-train: ranks 0 and 1 from SLURM_PROCID meet at node1's address, "
                     f"then stop without GPUs: {seen} {r.stdout.strip()[-160:]}")

        # 2. Data-parallel across the two nodes, against one process at the double batch.
        single, double = os.path.join(args.dir, "single"), os.path.join(args.dir, "two-nodes")
        r1 = subprocess.run(train_args(args.train, single, 64, STEPS), capture_output=True, text=True, timeout=600)
        sums = os.path.join(args.dir, "checksums")
        mpi = ["mpirun", "-np", "2", "--map-by", "node", "--bind-to", "none", "--mca", "btl", "self,tcp",
               "--mca", "btl_tcp_if_include", SUBNET, "--mca", "oob_tcp_if_include", SUBNET]
        script = os.path.join(args.dir, "two-nodes.sh")
        write_script(script, f"export MAESTRO_PARAM_CHECKSUMS={quoted([sums])}\n"
                             f"exec {quoted(mpi + train_args(args.train, double, 32, STEPS))}\n")
        out = os.path.join(args.dir, "two-nodes.out")
        r2 = subprocess.run(["sbatch", "--wait", "-N2", "-n2", "-o", out, script],
                            capture_output=True, text=True, env=MPI_ENV | {"SLURM_CONF": env["SLURM_CONF"]},
                            timeout=600)
        output = open(out).read() if os.path.exists(out) else ""
        check.expect(r1.returncode == 0 and r2.returncode == 0 and "data-parallel: 2 ranks (mpi)" in output,
                     f"one process (batch 64) and a 2-node Slurm job of mpirun -np 2 (batch 32 each) train "
                     f"{STEPS} steps (exits {r1.returncode}, {r2.returncode}): {output[-600:]}")
        if r1.returncode == 0 and r2.returncode == 0:
            expect_equivalent(check, single, double, sums, STEPS, "nodes' ranks")

        # 3. SIGUSR1 (the preemption warning) -> checkpoint, exit 3, requeue, exact resume.
        steps = 24
        full, preempted = os.path.join(args.dir, "full"), os.path.join(args.dir, "preempted")
        r = subprocess.run(train_args(args.train, full, 32, steps), capture_output=True, text=True,
                           timeout=600)
        check.expect(r.returncode == 0, f"an uninterrupted run of {steps} steps (exit {r.returncode})")
        script = os.path.join(args.dir, "requeue.sbatch")
        # As the shipped scripts do: requeue.sh around srun around the trainer.
        write_script(script, f"exec {quoted([REQUEUE, 'srun', '--kill-on-bad-exit=1'] + train_args(args.train, preempted, 32, steps))} "
                             "--resume auto\n")
        log = os.path.join(args.dir, "requeue.out")
        sub = subprocess.run(["sbatch", "--parsable", "--requeue", "--open-mode=append", "-o", log,
                              script], capture_output=True, text=True, env=env, timeout=60)
        job = sub.stdout.strip().split(";")[0]
        check.expect(sub.returncode == 0 and job.isdigit(), f"the training job is submitted ({sub.stdout.strip()})")
        deadline = time.time() + 180
        while time.time() < deadline and not os.path.isdir(checkpoint_path(preempted, 4)):
            time.sleep(0.2)
        check.expect(os.path.isdir(checkpoint_path(preempted, 4)), "the job wrote its checkpoint at step 4")
        # The warning reaches the batch shell only (as `--signal=B:USR1@N` does); requeue.sh
        # passes it on to the trainer.
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=env, timeout=30)
        deadline = time.time() + 240
        state = ""
        while time.time() < deadline:
            state = job_state(env, job)
            if state in ("COMPLETED", "FAILED", "CANCELLED") and os.path.exists(log) and \
                    "restart 1)" in open(log).read():
                break
            time.sleep(1)
        text = open(log).read() if os.path.exists(log) else ""
        check.expect("exited 3 (job " + job + ", restart 0)" in text and "preempted by signal 10" in text,
                     f"SIGUSR1 stopped the trainer with a checkpoint and exit 3: "
                     f"{[x for x in text.splitlines() if x.startswith(('requeue.sh:', 'preempted by'))]}")
        check.expect(state == "COMPLETED" and "exited 0 (job " + job + ", restart 1)" in text,
                     f"the job requeued itself and its second run completed (job {job}: {state})")
        queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env)
        check.expect(queue.stdout.strip() == "", f"no second job for the run: {queue.stdout.strip()!r}")
        if state == "COMPLETED":
            a, b = weights(full, steps), weights(preempted, steps)
            check.expect(all((a[k] == b[k]).all() for k in a) and set(a) == set(b),
                         "the requeued run's final parameters are bitwise equal to the uninterrupted run's")
        # 5. A node lost under a running 2-node job: the gang fails, requeue.sh requeues it (one
        #    failure counted in the job's comment), the node comes back, and the job resumes
        #    from its last checkpoint and ends bitwise equal to an uninterrupted 2-node run.
        steps = 24
        mpi_env = MPI_ENV | {"SLURM_CONF": env["SLURM_CONF"]}
        whole, lost = os.path.join(args.dir, "two-nodes-whole"), os.path.join(args.dir, "two-nodes-lost")
        script = os.path.join(args.dir, "whole.sbatch")
        write_script(script, f"exec {quoted(mpi + train_args(args.train, whole, 32, steps))}\n")
        r = subprocess.run(["sbatch", "--wait", "-N2", "-n2", "-o", os.path.join(args.dir, "whole.out"), script],
                           capture_output=True, text=True, env=mpi_env, timeout=600)
        check.expect(r.returncode == 0, f"an uninterrupted 2-node run of {steps} steps (exit {r.returncode})")
        script = os.path.join(args.dir, "lost.sbatch")
        write_script(script, f"exec {quoted([REQUEUE] + mpi + train_args(args.train, lost, 32, steps))} "
                             "--resume auto\n")
        log = os.path.join(args.dir, "lost.out")
        sub = subprocess.run(["sbatch", "--parsable", "-N2", "-n2", "--requeue", "--open-mode=append", "-o", log,
                              script], capture_output=True, text=True, env=mpi_env, timeout=60)
        job = sub.stdout.strip().split(";")[0]
        deadline = time.time() + 180
        while time.time() < deadline and not os.path.isdir(checkpoint_path(lost, 4)):
            time.sleep(0.2)
        failed = subprocess.run([CLUSTER, "fail", cluster, "node2"], capture_output=True, text=True, timeout=60)
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.exists(log) and "requeued" in open(log).read()):
            time.sleep(0.5)
        text = open(log).read() if os.path.exists(log) else ""
        check.expect(failed.returncode == 0 and "failure 1 of at most 3: requeued" in text,
                     f"node2 killed after checkpoint 4: the gang failed and the job requeued itself "
                     f"{[x for x in text.splitlines() if x.startswith('requeue.sh')]}")
        # Not waiting for Slurm to mark node2 down (SlurmdTimeout): the requeued job is placed
        # on both nodes at once, node2 still thought alive, and waits there for its slurmd.
        revived = subprocess.run([CLUSTER, "revive", cluster, "node2"], capture_output=True, text=True, timeout=60)
        deadline = time.time() + 300
        state = ""
        while time.time() < deadline:
            state = job_state(env, job)
            if state in ("COMPLETED", "FAILED", "CANCELLED") and "restart 1)" in open(log).read():
                break
            time.sleep(1)
        text = open(log).read()
        show = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, env=env).stdout
        check.expect(revived.returncode == 0 and state == "COMPLETED" and "exited 0 (job " + job + ", restart 1)" in text
                     and "Comment=maestro-failures=1" in show,
                     f"node2 back: the requeued job ran again on both nodes and completed (job {job}: {state}, "
                     f"one failure counted)")
        if state == "COMPLETED":
            a, b = weights(whole, steps), weights(lost, steps)
            check.expect(set(a) == set(b) and all((a[k] == b[k]).all() for k in a),
                         "after the lost node, the resumed gang's final parameters are bitwise equal to an "
                         "uninterrupted 2-node run's")

        # 4. The shipped batch scripts are valid Slurm jobs (the test cluster has 2 nodes and its
        #    own partitions: those two settings are overridden, nothing else).
        for name in sorted(os.listdir(os.path.join(ROOT, "deploy", "slurm"))):
            if not name.endswith(".sbatch"):
                continue
            nodes = "1" if name == "services.sbatch" else "2"
            r = subprocess.run(["sbatch", "--test-only", f"--nodes={nodes}", "--partition=debug",
                                os.path.join(ROOT, "deploy", "slurm", name)],
                               capture_output=True, text=True, env=env, timeout=60)
            check.expect(r.returncode == 0 and "to start at" in r.stderr,
                         f"sbatch --test-only accepts deploy/slurm/{name}: {r.stderr.strip()[-160:]}")
    finally:
        cluster_down(cluster, env)
    print(f"slurm test: {check.failures} FAILURES" if check.failures else "slurm test: all ok")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
