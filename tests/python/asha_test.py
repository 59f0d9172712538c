"""ASHA through real processes on 127.0.0.1: maestro-coordinator, two maestro-worker daemons
running real maestro-train children (mae_vit_tiny_fmnist pretraining on Fashion-MNIST shards),
the maestro CLI.

1. `experiment preview` prints the rung plan (75 / 150 / 300 steps at reduction factor 2 for
   4 trials: 4, 2, 1 trials at most) and the worst-case budget (600 steps of 1,200).
2. The sweep runs: each trial trains to 75 steps and reports its held-out masked-patch loss;
   the rungs promote 2 trials to 150 steps and 1 to 300, each resuming from its checkpoint.
   The coordinator is SIGKILLed mid-sweep (after the first stop, while trials run) and
   restarted: the sweep completes with no trial promoted twice to a rung and none lost (every
   trial reported rung 0; rungs hold 4, 2, 1 trials; each rung's promotions within its quota).
3. Exact resume on promotion: the trial that reached the top rung (stopped at 75 and at 150,
   resumed twice) ends bitwise equal (model and optimizer state) to the same trial trained
   straight through 300 steps as a one-trial grid, and its rung metrics are the straight run's
   held-out losses at those steps.
4. `experiment results` shows each trial's rung and metric by rung.
Exit status 0 when everything holds.
"""
import argparse
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from orchestration_test import Cluster, write_experiment
from run_util import Checker, checkpoint_path, ingest_fmnist

# The held-out measure on 500 test images (the default 1000 doubles the evaluation time).
EVAL = {"eval.images": 500}
SETTINGS = "resources: {slots_per_trial: 1}\ncheckpoint: {keep_last: 3}"

ASHA = ("{name: asha, max_trials: 4, seed: 5, metric: heldout_masked_loss, mode: min, "
        "unit: steps, min_budget: 75, max_budget: 300, reduction_factor: 2}")


def final_checkpoint(runs, trial, step):
    return checkpoint_path(os.path.join(runs, f"trial-{trial}", "pretrain"), step)


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
    for split in ("train", "test"):
        ingest_fmnist(args.maestro, shards, split)
    hparams = dict(EVAL, **{"optim.blr": {"type": "log", "base": 10, "minval": -3.5,
                                          "maxval": -2.0}})
    asha = write_experiment(os.path.join(args.dir, "asha.yaml"), "asha", hparams, searcher=ASHA,
                            extra=SETTINGS + "\nmax_concurrent_trials: 2")

    # 1. The rung plan.
    r = subprocess.run([args.maestro, "experiment", "preview", asha], capture_output=True,
                       text=True, timeout=120)
    plan = re.findall(r"^(\d+)\s+(\d+)\s+(\d+)\s*$", r.stdout, re.M)
    check.expect(r.returncode == 0 and plan == [("0", "75", "4"), ("1", "150", "2"), ("2", "300", "1")]
                 and "worst-case budget: 600 steps (every trial to the last rung: 1200 steps)" in r.stdout,
                 "experiment preview prints the rung plan and the worst-case budget:\n" + r.stdout)

    cluster = Cluster(args)
    cluster.start_coordinator(worker_timeout_s=20, heartbeat_ms=300)
    try:
        r = cluster.cli("dataset", "register", "fmnist", "--path", shards)
        check.expect(r.returncode == 0, "dataset registered")
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        created = cluster.create(asha)
        experiment, ids = created["experiment"], created["trials"]
        check.expect(len(ids) == 4, f"4 trials drawn ({ids})")

        # 2. SIGKILL the coordinator once a trial has stopped at a rung and others are running.
        cluster.wait(experiment, lambda ts: any(t["state"] == "stopped" for t in ts)
                     and any(t["state"] in ("running", "assigned") for t in ts),
                     "a first stop with trials still running", timeout=300)
        cluster.coordinator.send_signal(signal.SIGKILL)
        cluster.coordinator.wait()
        time.sleep(1)
        cluster.start_coordinator(worker_timeout_s=20, heartbeat_ms=300)
        settled = ("stopped", "completed", "failed", "canceled")
        trials = cluster.wait(experiment, lambda ts: all(t["state"] in settled for t in ts)
                              and any(t["state"] == "completed" for t in ts),
                              "the sweep to settle", timeout=600)
        by_id = {t["id"]: t for t in trials}
        rungs = [sum(len(t.get("rung_metrics", [])) > k for t in trials) for k in range(3)]
        states = sorted(t["state"] for t in trials)
        check.expect(states == ["completed", "stopped", "stopped", "stopped"]
                     and rungs == [4, 2, 1],
                     f"the sweep completed after the coordinator's SIGKILL: rungs hold {rungs} "
                     f"trials (4, 2, 1), states {states}")
        events = cluster.events()
        resumed = [(e["trial"], e.get("cause", "")) for e in events if e["kind"] == "trial_resumed"]
        check.expect(len(resumed) == len(set(resumed)) == 3,
                     f"no trial promoted twice to a rung, 3 promotions in all: {resumed}")
        lost = [t["id"] for t in trials if len(t.get("rung_metrics", [])) != t.get("rung", 0) + 1]
        check.expect(not lost, f"none lost: every trial reported at the rung it trained to ({lost})")
        # Each rung's promotions within its quota, the best by then promoted: the promoted from
        # rung k are among the best floor(R_k / 2) at rung k in the end (4 results: 2; 2: 1).
        for k, quota in ((0, 2), (1, 1)):
            reported = sorted((t["rung_metrics"][k], t["id"]) for t in trials
                              if len(t.get("rung_metrics", [])) > k)
            promoted = {t["id"] for t in trials if t.get("rung", 0) > k}
            check.expect(len(promoted) == quota and promoted == {i for _, i in reported[:quota]},
                         f"rung {k} promoted its best {quota}: {sorted(promoted)} of {reported}")
        stopped = next(t for t in trials if t["state"] == "stopped")
        r = cluster.cli("trial", "logs", str(stopped["id"]), "-f", timeout=30)
        check.expect(r.returncode == 0 and "is stopped" in r.stderr and "=== trial" in r.stdout,
                     f"trial logs -f of a stopped trial prints its log and ends: {r.stderr.strip()}")
        assigned = [e for e in events if e["kind"] == "trial_assigned"]
        check.expect(len(assigned) == 7, f"7 attempts in all (4 + 2 + 1): {len(assigned)}")

        # 3. The top trial against the same trial trained straight through.
        top = next(t for t in trials if t["state"] == "completed")
        straight = write_experiment(
            os.path.join(args.dir, "straight.yaml"), "straight",
            dict(EVAL, **{"optim.blr": top["hparams"]["optim.blr"], "optim.steps": 300}),
            extra=SETTINGS)
        made = cluster.create(straight)
        done = cluster.wait(made["experiment"], lambda ts: ts[0]["state"] in ("completed", "failed"),
                            "the straight run", timeout=300)
        reference = done[0]["id"]
        a, b = final_checkpoint(cluster.runs, top["id"], 300), final_checkpoint(cluster.runs, reference, 300)
        same = all(os.path.exists(os.path.join(d, f)) for d in (a, b)
                   for f in ("model.safetensors", "optimizer.safetensors")) and all(
            filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)
            for f in ("model.safetensors", "optimizer.safetensors"))
        logs = cluster.cli("trial", "logs", str(top["id"])).stdout
        resumes = re.findall(r"resumed from \S+ at optimizer step (\d+)", logs)
        check.expect(done[0]["state"] == "completed" and same and resumes == ["75", "150"],
                     f"trial {top['id']} (stopped at 75 and 150, resumed at {resumes}) ends bitwise "
                     f"equal to trial {reference} trained straight through 300 steps")
        with open(os.path.join(cluster.runs, f"trial-{reference}", "pretrain", "metrics.jsonl")) as f:
            evals = {r["step"]: r["heldout_masked_loss"] for r in map(json.loads, f)
                     if r.get("kind") == "eval"}
        check.expect(top["rung_metrics"][2] == evals.get(300),
                     f"its top-rung metric is the straight run's held-out loss at step 300 "
                     f"({top['rung_metrics']} vs {evals})")

        # 4. The results table.
        r = cluster.cli("experiment", "results", str(experiment))
        rows = [line for line in r.stdout.splitlines() if re.match(r"^\d+\s", line)]
        check.expect(r.returncode == 0 and "heldout_masked_loss by rung" in r.stdout and len(rows) == 4
                     and any(re.search(r"completed\s+2\s+\d\.\d{4} / \d\.\d{4} / \d\.\d{4}", x) for x in rows),
                     "experiment results shows each trial's rung and metric by rung:\n" + r.stdout)
    finally:
        cluster.stop()
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
