"""make eval, second half: linear probing and fine-tuning on Fashion-MNIST.

For seeds 0, 1, 2:
- linear probing (configs/fmnist_linprobe.yaml) of the MAE-pretrained encoder and of a randomly
  initialized encoder of the same shape (classify.pretrained=none, same seed, same budget);
- fine-tuning (configs/fmnist_finetune.yaml) from the MAE encoder and of the same ViT from
  scratch with the same fine-tuning budget.
Top-1 / top-5 on the 10,000 held-out test images after the last epoch, from each run's
result.json. Writes bench/results/eval-fmnist-classify.json and prints the table. Exit status 1
when linear probing of the MAE encoder does not beat the random encoder by 3 points (mean of
the seeds).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

SEEDS = (0, 1, 2)


def run(train, job, config, out_dir, pretrained, seed):
    start = time.time()
    cmd = [train, job, "--config", config, "--set", f"classify.pretrained={pretrained}",
           "--set", f"run.seed={seed}", "--set", f"run.output_dir={out_dir}", "--resume", "auto"]
    print("+", " ".join(cmd), flush=True)
    with open(out_dir + ".log", "w") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"{job} seed {seed} failed with status {code}; see {out_dir}.log")
    result = json.load(open(os.path.join(out_dir, "result.json")))
    final = result["final"]
    print(f"  {job:8s} seed {seed} {('MAE' if pretrained != 'none' else 'none'):4s}: top-1 {final['top1']:.2f}%  "
          f"top-5 {final['top5']:.2f}%  ({time.time() - start:.0f} s)", flush=True)
    return {"seed": seed, "top1": final["top1"], "top5": final["top5"], "loss": final["loss"],
            "wall_s": round(time.time() - start, 1), "optimizer_steps": result["optimizer_steps"],
            "pretrained": result["pretrained"]}


def mean(rows, key):
    return sum(r[key] for r in rows) / len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--pretrained", required=True, help="the MAE checkpoint folder")
    parser.add_argument("--runs", default="runs/eval-fmnist-classify")
    parser.add_argument("--out", default="bench/results/eval-fmnist-classify.json")
    args = parser.parse_args()
    os.makedirs(args.runs, exist_ok=True)
    table = {}
    for job, config in (("linprobe", "configs/fmnist_linprobe.yaml"), ("finetune", "configs/fmnist_finetune.yaml")):
        for source in ("mae", "none"):
            pretrained = args.pretrained if source == "mae" else "none"
            table[(job, source)] = [run(args.train, job, config, os.path.join(args.runs, f"{job}-{source}-s{seed}"),
                                        pretrained, seed) for seed in SEEDS]
    summary = {}
    for job in ("linprobe", "finetune"):
        mae, none = table[(job, "mae")], table[(job, "none")]
        summary[job] = {
            "mae_top1_mean": mean(mae, "top1"), "baseline_top1_mean": mean(none, "top1"),
            "mae_top5_mean": mean(mae, "top5"), "baseline_top5_mean": mean(none, "top5"),
            "top1_gain": mean(mae, "top1") - mean(none, "top1"),
            "mae": mae, "baseline": none,
        }
    lp, ft = summary["linprobe"], summary["finetune"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    config_of = lambda d: json.load(open(os.path.join(args.runs, d, "result.json")))["config"]
    report = {
        "what": "Fashion-MNIST test split (10,000 images, held out); top-1/top-5 after the last epoch; "
                "mean of seeds 0, 1, 2",
        "pretrained": args.pretrained,
        "linprobe": dict(lp, baseline_is="randomly initialized encoder of the same shape, same probe budget",
                         budget=config_of("linprobe-mae-s0")["optim"]),
        "finetune": dict(ft, baseline_is="the same ViT trained from scratch with the same fine-tuning budget",
                         budget=config_of("finetune-mae-s0")["optim"]),
        "linprobe_gain_at_least_3_points": lp["top1_gain"] >= 3.0,
        "machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()}",
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    json.dump(report, open(args.out, "w"), indent=1)
    print(f"\n{'':10s}{'MAE encoder':>14s}{'baseline':>12s}{'gain':>8s}   (top-1 %, mean of 3 seeds)")
    for job, row in (("linprobe", lp), ("finetune", ft)):
        print(f"{job:10s}{row['mae_top1_mean']:14.2f}{row['baseline_top1_mean']:12.2f}{row['top1_gain']:+8.2f}")
    print(f"written to {args.out}")
    return 0 if lp["top1_gain"] >= 3.0 else 1


if __name__ == "__main__":
    sys.exit(main())
