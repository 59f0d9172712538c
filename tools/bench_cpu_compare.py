"""make bench: CPU training throughput of the small preset, maestro beside the Python reference
(Hugging Face ViTMAEForPreTraining with the same shapes, torch.optim.AdamW with the official
grouping; tools/bench_python_cpu.py), same torch, same thread count, random 28x28x1 images,
forward + backward + AdamW at batch 256.

This machine's timings drift by 10-20% within a minute, so the two alternate in short rounds
(ROUNDS x STEPS steps each) and the verdict is the ratio of the means of the per-round medians.
Writes bench/results/cpu-tiny-vs-python.json."""
import argparse
import json
import os
import re
import subprocess
import sys

STEP = re.compile(r"median step\s+([0-9.]+) ms")


def median_ms(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(STEP.search(out).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bench", required=True, help="maestro-bench")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/cpu-tiny-vs-python.json")
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    maestro_cmd = [args.bench, "--preset", "mae_vit_tiny_fmnist", "--batch", "256", "--steps", str(args.steps),
                   "--warmup", "3", "--threads", str(args.threads), "--optimizer"]
    python_cmd = [args.python, os.path.join(here, "bench_python_cpu.py"), "--batch", "256", "--steps",
                  str(args.steps), "--warmup", "3", "--threads", str(args.threads)]
    rounds = []
    for r in range(args.rounds):
        m = median_ms(maestro_cmd)
        p = median_ms(python_cmd)
        rounds.append({"maestro_ms": m, "python_ms": p})
        print(f"round {r + 1}: maestro {m:7.1f} ms/step ({256 / m * 1000:6.1f} img/s)   "
              f"python {p:7.1f} ms/step ({256 / p * 1000:6.1f} img/s)", flush=True)
    maestro_mean = sum(r["maestro_ms"] for r in rounds) / len(rounds)
    python_mean = sum(r["python_ms"] for r in rounds) / len(rounds)
    speedup = python_mean / maestro_mean
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    result = {"what": "mae_vit_tiny_fmnist, CPU, fp32, batch 256, forward + backward + AdamW",
              "machine": f"{cpu}, {os.cpu_count()} cores", "threads": args.threads, "rounds": rounds,
              "maestro_images_per_second": 256 / maestro_mean * 1000,
              "python_images_per_second": 256 / python_mean * 1000,
              "maestro_speedup_over_python": speedup}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    json.dump(result, open(args.out, "w"), indent=1)
    print(f"maestro {result['maestro_images_per_second']:.1f} img/s, python {result['python_images_per_second']:.1f} "
          f"img/s: maestro is {speedup:.3f}x the Python reference ({args.out})")


if __name__ == "__main__":
    main()
