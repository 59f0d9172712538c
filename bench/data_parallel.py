"""Data-parallel scaling on the CPU: images/s of the small preset's pretraining with
1 and 2 ranks (mpirun -np 2, one thread each, the same per-rank batch), and the time per step
spent in the gradient all-reduce; bench/results/data-parallel-cpu.json.

    python bench/data_parallel.py --train build/tools/maestro-train [--steps 60] [--batch 64]
"""
import argparse
import json
import os
import platform
import re
import subprocess
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def run(command, out, steps, batch):
    args = [*command, "pretrain", "--config", os.path.join(ROOT, "configs", "fmnist_pretrain.yaml"),
            "--set", f"run.output_dir={out}", "--set", f"optim.batch_size={batch}",
            "--set", f"optim.max_steps={steps}", "--set", "run.threads=1", "--set", "data.num_workers=1",
            "--set", "log.interval_steps=10", "--set", "checkpoint.interval_steps=0",
            "--set", "checkpoint.interval_seconds=0", "--set", "optim.warmup_epochs=0.01"]
    r = subprocess.run(args, capture_output=True, text=True, env=ENV, check=True)
    lines = [l for l in r.stdout.splitlines() if l.startswith("step ")][1:]  # the first: warm-up
    rates = [float(re.search(r"([\d.]+) img/s", l).group(1)) for l in lines]
    sync = [float(m.group(1)) for l in lines if (m := re.search(r"all-reduce ([\d.]+) ms/step", l))]
    return sum(rates) / len(rates), (sum(sync) / len(sync) if sync else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "data-parallel-cpu.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one, _ = run([args.train], os.path.join(tmp, "one"), args.steps, args.batch)
        two, sync = run(["mpirun", "-np", "2", "--bind-to", "none", args.train], os.path.join(tmp, "two"),
                        args.steps, args.batch)
    result = {
        "preset": "mae_vit_tiny_fmnist", "per_rank_batch": args.batch, "threads_per_rank": 1,
        "steps": args.steps, "images_per_s_1_rank": round(one, 1), "images_per_s_2_ranks": round(two, 1),
        "speedup_2_over_1": round(two / one, 3), "allreduce_ms_per_step_2_ranks": round(sync, 2),
        "machine": f"{platform.node()}: {os.cpu_count()} cores",
        "note": "measured side by side in one run; images/s averaged over the progress lines after the first",
    }
    print(json.dumps(result, indent=1))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
