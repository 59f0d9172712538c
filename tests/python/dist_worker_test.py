"""Data-parallel trials through the orchestration: a coordinator and one worker with
2 CPU slots; trials of slots_per_trial 2 run as `mpirun -np 2 maestro-train` started by the
worker daemon.

1. Equivalence through the worker: a 2-slot trial (batch B per rank, N steps) ends within 1e-5
   per parameter tensor of one process training N steps with batch 2B on the same samples.
2. Exact resume of the gang: one rank of a 2-slot trial killed with SIGKILL after a checkpoint;
   the worker reports the failure, the coordinator restarts the whole gang from the
   checkpoint (attempt 2) and its final parameters equal an uninterrupted 2-rank run's.
3. Multi-node placement with a second worker: a trial of 2 nodes is gang-placed on both, each
   rank gets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT and meets the other in the TCPStore
   rendezvous (each writes what it saw); on these CPU-only workers it then stops with the
   documented message (NCCL needs GPUs).
4. A GPU trial (run.device cuda) of 2 slots: the worker starts one process per slot with
   torchrun-style ranks (LOCAL_RANK, the slot's GPU in CUDA_VISIBLE_DEVICES) that meet on the
   worker's machine; then the documented message (no GPUs here).
5. A GPU trial of 2 nodes x 2 slots: ranks 0-1 on one worker, 2-3 on the other, all meeting at
   node 0's address; then the documented message.
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from dist_util import MPI_ENV, parameter_errors, rank_pid, weights
from run_util import Checker, Credentials, checkpoint_path, free_port, start_listening

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FMNIST = "/usr/share/datasets/fashion-mnist"

def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maestro", required=True)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    shards = os.path.join(args.dir, "shards")
    subprocess.run([args.maestro, "data", "ingest", "--format", "idx", "--src", FMNIST, "--out", shards,
                    "--split", "train", "--shards", "2"], check=True, capture_output=True, timeout=300)
    address = f"127.0.0.1:{free_port()}"
    credentials = Credentials(args.maestro, args.dir)
    coordinator, _ = start_listening([args.coordinator, "--db", os.path.join(args.dir, "db"), "--runs",
                                      os.path.join(args.dir, "runs"), "--listen", address,
                                      "--data-root", args.dir,
                                      "--heartbeat-ms", "300", "--worker-timeout-s", "20",
                                      *credentials.server_args()],
                                     r"listening on port (\d+)")
    threading.Thread(target=coordinator.stdout.read, daemon=True).start()
    work = os.path.join(args.dir, "w1")
    worker = subprocess.Popen([args.worker, "--coordinator", address, "--id", "w1", "--slots", "2",
                               "--address", "127.0.0.1", "--work-dir", work,
                               "--runs-root", os.path.join(args.dir, "runs"), "--data-root", args.dir,
                               *credentials.worker_args(address, "w1")],
                              stdout=open(os.path.join(args.dir, "w1.log"), "w"), stderr=subprocess.STDOUT)
    second = None

    def cli(*words):
        r = subprocess.run([args.maestro, *words, "--coordinator", address, "--json"], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def submit(name, mask, steps, resources="{slots_per_trial: 2}", gpu=False):
        path = os.path.join(args.dir, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(f"name: {name}\nkind: pretrain\ndataset: fmnist\n"
                    f"config: {ROOT}/configs/fmnist_pretrain.yaml\nhyperparameters:\n"
                    + ("  run.device: cuda\n" if gpu else "") +
                    f"  model.mask_ratio: {mask}\n  optim.batch_size: 32\n  optim.max_steps: {steps}\n"
                    "  run.threads: 1\n  data.num_workers: 1\n  optim.warmup_epochs: 0.01\n"
                    f"  log.interval_steps: 2\nresources: {resources}\n"
                    "checkpoint: {interval_steps: 4, keep_last: 0}\nmax_restarts: 2\n")
        return cli("experiment", "create", path)[0]

    def wait(experiment, done, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            trial = cli("experiment", "describe", str(experiment))[0]["trials"][0]
            if done(trial):
                return trial
            time.sleep(0.5)
        raise RuntimeError(f"timed out: {trial}")

    def run_gang(name, mask, resources, ranks, gpu=False):
        """Submits a one-trial experiment of 8 steps and waits for it to end: (the trial, what
        each of its ranks saw in the rendezvous (by rank), {worker: the ranks it ran})."""
        created = submit(name, mask, 8, resources, gpu=gpu)
        trial_id = created["trials"][0]
        trial = wait(created["experiment"], lambda t: t["state"] in ("completed", "failed"))
        seen, nodes = [], {}
        for folder, worker_id in ((work, "w1"), (second_work, "w2")):
            for rank in range(ranks):
                path = os.path.join(folder, "logs", f"trial-{trial_id}-attempt-1.rendezvous.rank-{rank}.json")
                if os.path.exists(path):
                    with open(path) as f:
                        seen.append(json.load(f))
                    nodes.setdefault(worker_id, []).append(rank)
        return trial, sorted(seen, key=lambda s: s["rank"]), nodes

    def reference(trial, attempt, out, extra=(), ranks=1):
        config = os.path.join(work, "configs", f"trial-{trial}-attempt-{attempt}.json")
        command = [args.train, "pretrain", "--config", config, "--set", f"run.output_dir={out}",
                   "--set", f"checkpoint.dir={out}/checkpoints", *extra]
        if ranks > 1:
            command = ["mpirun", "-np", str(ranks), "--bind-to", "none", *command]
        return subprocess.run(command, capture_output=True, text=True, env=MPI_ENV, timeout=600)

    try:
        subprocess.run([args.maestro, "dataset", "register", "fmnist", "--path", shards, "--coordinator", address],
                       check=True, capture_output=True, timeout=60)

        # 1. A 2-slot trial against one process at the double batch.
        created = submit("two-slots", 0.75, 8)
        trial_id = created["trials"][0]
        t = wait(created["experiment"], lambda t: t["state"] in ("completed", "failed"))
        out = os.path.join(args.dir, "runs", f"trial-{trial_id}", "pretrain")
        logs = subprocess.run([args.maestro, "trial", "logs", str(trial_id), "--coordinator", address],
                              capture_output=True, text=True).stdout
        check.expect(t["state"] == "completed" and "data-parallel: 2 ranks (mpi)" in logs,
                     f"a 2-slot trial runs as 2 mpirun ranks started by the worker ({t['state']})")
        single = os.path.join(args.dir, "single")
        r = reference(trial_id, 1, single, ["--set", "optim.batch_size=64"])
        if r.returncode == 0 and t["state"] == "completed":
            errors = parameter_errors(weights(single, 8), weights(out, 8))
            worst = max(errors, key=errors.get)
            check.expect(errors[worst] < 1e-5,
                         f"every parameter tensor is within 1e-5 relative of one process with the "
                         f"double batch (worst {errors[worst]:.2e}, {worst}; {len(errors)} tensors)")
        else:
            check.expect(False, f"the single-process reference ran: {r.stdout[-500:]} {r.stderr[-500:]}")

        # 2. A rank killed after a checkpoint: the coordinator restarts the gang.
        created = submit("gang-restart", 0.6, 16)
        trial_id = created["trials"][0]
        out = os.path.join(args.dir, "runs", f"trial-{trial_id}", "pretrain")
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(os.path.join(checkpoint_path(out, 8), "manifest.json")):
            time.sleep(0.05)
        os.kill(rank_pid(f"trial-{trial_id}-attempt-1.json", 1), signal.SIGKILL)
        t = wait(created["experiment"], lambda t: t["state"] in ("completed", "failed"))
        check.expect(t["state"] == "completed" and t["attempt"] == 2 and len(t.get("failures", [])) == 1,
                     f"the gang is restarted by the coordinator and completes (attempt {t['attempt']}, "
                     f"failure: {(t.get('failures') or [{}])[0].get('cause', '-')[:80]})")
        logs = subprocess.run([args.maestro, "trial", "logs", str(trial_id), "--coordinator", address],
                              capture_output=True, text=True).stdout
        resumed = logs.split("attempt 2")[-1]
        check.expect("resumed from" in resumed, "attempt 2 resumed from the checkpoint: "
                     + next((line for line in resumed.splitlines() if "resumed from" in line), "-"))
        uninterrupted = os.path.join(args.dir, "uninterrupted")
        r = reference(trial_id, 1, uninterrupted, ranks=2)
        same = r.returncode == 0 and all(np.array_equal(weights(uninterrupted, 16)[k], v)
                                         for k, v in weights(out, 16).items())
        check.expect(same, "its final parameters equal an uninterrupted 2-rank run's, bitwise")

        # 3. A 2-node trial on two workers: gang-placed, each rank gets its RANK / WORLD_SIZE /
        # MASTER_ADDR / MASTER_PORT and meets the other in the TCPStore rendezvous; on these
        # CPU-only workers it then stops with the documented message.
        second_work = os.path.join(args.dir, "w2")
        second = subprocess.Popen([args.worker, "--coordinator", address, "--id", "w2", "--slots", "2",
                                   "--address", "127.0.0.1", "--work-dir", second_work,
                                   "--runs-root", os.path.join(args.dir, "runs"), "--data-root", args.dir,
                                   *credentials.worker_args(address, "w2")],
                                  stdout=open(os.path.join(args.dir, "w2.log"), "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline and len([w for w in cli("worker", "list") if w["state"] == "alive"]) < 2:
            time.sleep(0.2)
        t, seen, _ = run_gang("two-nodes", 0.5, "{slots_per_trial: 1, nodes: 2}", 2)
        check.expect(sorted(t.get("gang", [])) == ["w1", "w2"] and len(seen) == 2
                     and [s["rank"] for s in seen] == [0, 1] and all(s["world_size"] == 2 for s in seen)
                     and len({(s["master_addr"], s["master_port"]) for s in seen}) == 1
                     and seen[0]["peers"] == seen[1]["peers"] and len(seen[0]["peers"]) == 2,
                     f"a 2-node trial is gang-placed on both workers and its ranks meet in the rendezvous: {seen}")
        check.expect(t["state"] == "failed" and "needs CUDA GPUs" in t.get("cause", ""),
                     f"on CPU-only workers it stops with the documented message: {t.get('cause', '')[:160]}")

        # 4. A GPU trial (run.device cuda) of 2 slots on one worker: one process per slot with
        # torchrun-style ranks (LOCAL_RANK 0 and 1, each slot its GPU in CUDA_VISIBLE_DEVICES)
        # meeting on this machine; without GPUs they then stop with the documented message.
        t, seen, _ = run_gang("gpu-two-slots", 0.65, "{slots_per_trial: 2}", 2, gpu=True)
        check.expect(len(seen) == 2 and [s["rank"] for s in seen] == [0, 1]
                     and [s["local_rank"] for s in seen] == [0, 1] and all(s["world_size"] == 2 for s in seen)
                     and {s["master_addr"] for s in seen} == {"127.0.0.1"}
                     and len({s["master_port"] for s in seen}) == 1
                     and {s.get("cuda_visible_devices") for s in seen} in ({"0,1"}, {"1,0"})
                     and seen[0]["peers"] == seen[1]["peers"] and len(set(seen[0]["peers"])) == 2,
                     f"a 2-slot GPU trial runs one process per slot with torchrun-style ranks that meet: {seen}")
        check.expect(t["state"] == "failed" and "which this machine lacks" in t.get("cause", ""),
                     f"... and without GPUs it stops with the documented message: {t.get('cause', '')[:160]}")

        # 5. A GPU trial of 2 nodes x 2 slots: ranks 0-1 on node 0, 2-3 on node 1, all four
        # meeting at node 0's address.
        t, seen, nodes = run_gang("gpu-two-by-two", 0.7, "{slots_per_trial: 2, nodes: 2}", 4, gpu=True)
        check.expect(sorted(t.get("gang", [])) == ["w1", "w2"] and len(seen) == 4
                     and [s["rank"] for s in seen] == [0, 1, 2, 3] and [s["local_rank"] for s in seen] == [0, 1, 0, 1]
                     and all(s["world_size"] == 4 for s in seen)
                     and len({(s["master_addr"], s["master_port"]) for s in seen}) == 1
                     and sorted(nodes.values()) == [[0, 1], [2, 3]]
                     and all(s["peers"] == seen[0]["peers"] for s in seen) and len(set(seen[0]["peers"])) == 4,
                     f"a 2-node x 2-slot GPU trial: ranks 0-1 on one worker, 2-3 on the other, all meeting ({nodes}): {seen}")
        check.expect(t["state"] == "failed" and "which this machine lacks" in t.get("cause", ""),
                     f"... and without GPUs it stops with the documented message: {t.get('cause', '')[:160]}")
    finally:
        for proc in (worker, coordinator, second):
            if proc is None:
                continue
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, coordinator, second):
            if proc is None:
                continue
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"data-parallel worker test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
