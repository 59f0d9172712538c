"""ASHA against the full grid on a fine-tuning learning-rate sweep of mae_vit_tiny_fmnist,
through the real system on this machine (maestro-coordinator, two maestro-worker daemons,
maestro-train children, Fashion-MNIST shards):

  1. one pretraining (1 epoch, batch 256) that both sweeps fine-tune from;
  2. the grid: 9 base learning rates, log-spaced over [1e-4, 1e-2], each fine-tuned 270 steps;
  3. ASHA: 9 trials drawn over the same range, rungs 30 / 90 / 270 steps, reduction factor 3,
     held-out top-1 (the first 2,000 test images) at each rung.

Both at 2 trials at a time. Prints and writes bench/results/asha-fmnist-finetune.json: the
optimizer steps each spent (ASHA's promoted trials resume, so a trial stopped at rung k spent
its budget), the wall time, every trial's top-1, and the best each found.

    python bench/asha.py --build build [--dir build/bench-asha]
"""
import argparse
import json
import os
import platform
import shutil
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from orchestration_test import Cluster, write_experiment  # noqa: E402
from run_util import ingest_fmnist  # noqa: E402

ONE_THREAD = {"run.threads": 1, "data.num_workers": 1}
FINETUNE = {"optim.batch_size": 64, "optim.warmup_epochs": 0.05,
            "classify.eval_max_samples": 2000, "log.interval_steps": 10}
LR = {"type": "log", "base": 10, "minval": -4, "maxval": -2}
BUDGETS = (30, 90, 270)


def write(path, name, kind, config, hparams, searcher):
    """An experiment file (orchestration_test.write_experiment) with one thread per trial and
    2 trials at a time."""
    return write_experiment(path, name, hparams, kind=kind, searcher=searcher, config=config,
                            base=ONE_THREAD,
                            extra="resources: {slots_per_trial: 1}\nmax_concurrent_trials: 2")


def run(cluster, path, what, timeout):
    start = time.time()
    created = cluster.create(path)
    settled = ("stopped", "completed", "failed", "canceled")
    trials = cluster.wait(created["experiment"],
                          lambda ts: all(t["state"] in settled for t in ts), what, timeout=timeout)
    return created["experiment"], trials, time.time() - start


def top1(trial):
    final = (trial.get("results", {}).get("finetune") or {}).get("final") or {}
    return final.get("top1")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--dir", default=None, help="work folder (default: BUILD/bench-asha)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                      "asha-fmnist-finetune.json"))
    args = parser.parse_args()
    build = os.path.abspath(args.build)
    args.dir = os.path.abspath(args.dir or os.path.join(build, "bench-asha"))
    args.maestro = os.path.join(build, "tools", "maestro")
    args.coordinator = os.path.join(build, "tools", "maestro-coordinator")
    args.worker = os.path.join(build, "tools", "maestro-worker")
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    shards = os.path.join(args.dir, "shards")
    for split in ("train", "test"):
        print(f"ingesting Fashion-MNIST {split} ...", flush=True)
        ingest_fmnist(args.maestro, shards, split)
    cluster = Cluster(args)
    cluster.start_coordinator(worker_timeout_s=30, heartbeat_ms=500)
    try:
        r = cluster.cli("dataset", "register", "fmnist", "--path", shards)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        cluster.start_worker("w1")
        cluster.start_worker("w2")

        print("pretraining once (1 epoch) ...", flush=True)
        pretrain = write(os.path.join(args.dir, "pretrain.yaml"), "bench-asha pretrain", "pretrain",
                         os.path.join(ROOT, "configs", "fmnist_pretrain.yaml"),
                         {"optim.epochs": 1, "optim.warmup_epochs": 0.2},
                         "{name: grid}")
        _, trials, pretrain_s = run(cluster, pretrain, "the pretraining", 1800)
        if trials[0]["state"] != "completed":
            raise RuntimeError(f"the pretraining did not complete: {trials[0]}")
        weights = os.path.join(cluster.runs, f"trial-{trials[0]['id']}", "pretrain", "checkpoints")
        base = dict(FINETUNE, **{"classify.pretrained": weights})
        config = os.path.join(ROOT, "configs", "fmnist_finetune.yaml")

        print(f"grid: 9 learning rates x {BUDGETS[-1]} steps ...", flush=True)
        grid = write(os.path.join(args.dir, "grid.yaml"), "bench-asha grid", "finetune", config,
                     dict(base, **{"optim.blr": dict(LR, count=9), "optim.steps": BUDGETS[-1]}),
                     "{name: grid}")
        _, grid_trials, grid_s = run(cluster, grid, "the grid", 3600)

        print(f"asha: 9 trials, rungs {BUDGETS}, reduction factor 3 ...", flush=True)
        asha = write(os.path.join(args.dir, "asha.yaml"), "bench-asha asha", "finetune", config,
                     dict(base, **{"optim.blr": LR}),
                     f"{{name: asha, max_trials: 9, seed: 0, metric: top1, mode: max, unit: steps, "
                     f"min_budget: {BUDGETS[0]}, max_budget: {BUDGETS[-1]}, reduction_factor: 3}}")
        _, asha_trials, asha_s = run(cluster, asha, "the asha sweep", 3600)
    finally:
        cluster.stop()

    grid_rows = [{"trial": t["id"], "blr": t["hparams"]["optim.blr"], "state": t["state"],
                  "steps": BUDGETS[-1] if t["state"] == "completed" else None, "top1": top1(t)}
                 for t in grid_trials]
    asha_rows = [{"trial": t["id"], "blr": t["hparams"]["optim.blr"], "state": t["state"],
                  "rung": t.get("rung", 0), "steps": BUDGETS[t.get("rung", 0)],
                  "top1_by_rung": t.get("rung_metrics", [])} for t in asha_trials]
    grid_best = max((r for r in grid_rows if r["top1"] is not None), key=lambda r: r["top1"])
    finished = [r for r in asha_rows if r["state"] == "completed"]
    asha_best = max(finished, key=lambda r: r["top1_by_rung"][-1]) if finished else None
    result = {
        "what": "fine-tuning learning-rate sweep of mae_vit_tiny_fmnist from one shared "
                "1-epoch pretraining: the full grid (9 blr values, 270 steps each) against "
                "ASHA (9 trials, rungs 30/90/270 steps, reduction factor 3, top-1 on the first "
                "2,000 test images); 2 trials at a time on 2 workers",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "pretrain_seconds": round(pretrain_s, 1),
        "grid": {"steps": sum(r["steps"] or 0 for r in grid_rows), "seconds": round(grid_s, 1),
                 "best_top1": grid_best["top1"], "best_blr": grid_best["blr"], "trials": grid_rows},
        "asha": {"steps": sum(r["steps"] for r in asha_rows), "seconds": round(asha_s, 1),
                 "worst_case_steps": 9 * 30 + 3 * 60 + 1 * 180,
                 "best_top1": asha_best["top1_by_rung"][-1] if asha_best else None,
                 "best_blr": asha_best["blr"] if asha_best else None, "trials": asha_rows},
    }
    result["asha_budget_fraction"] = round(result["asha"]["steps"] / result["grid"]["steps"], 3)
    result["asha_wall_fraction"] = round(asha_s / grid_s, 3)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"\n{'':6}{'steps':>8}{'seconds':>10}{'best top-1 %':>14}  best blr")
    for name in ("grid", "asha"):
        r = result[name]
        best = f"{r['best_top1']:.2f}" if r["best_top1"] is not None else "-"
        print(f"{name:6}{r['steps']:>8}{r['seconds']:>10}{best:>14}  {r['best_blr']}")
    print(f"ASHA spent {result['asha_budget_fraction']:.1%} of the grid's steps and "
          f"{result['asha_wall_fraction']:.1%} of its time; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
