#!/usr/bin/env bash
# make eval: pretrains the small preset on Fashion-MNIST for 5 epochs (configs/fmnist_pretrain.yaml,
# about 7-8 minutes on 2 cores), then measures the masked-patch loss on the 10,000 held-out test
# images against the mean-of-visible-patches baseline and draws the reconstruction grid.
# Results: bench/results/eval-fmnist-pretrain.json and eval-fmnist-recon.png.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
run=runs/eval-fmnist
results=bench/results
mkdir -p "$results"
rm -rf "$run"
start=$(date +%s)
"$build/tools/maestro-train" pretrain --config configs/fmnist_pretrain.yaml --set run.output_dir="$run"
train_s=$(( $(date +%s) - start ))
ckpt="$run/checkpoints/$(ls "$run/checkpoints" | grep '^step-' | sort | tail -1)"
"$build/tools/maestro" eval recon --checkpoint "$ckpt" --split test --images 10000 --seed 0 \
  --out "$results/eval-fmnist-pretrain.json"
"$build/tools/maestro" viz recon --checkpoint "$ckpt" --split test --images 16 --seed 0 \
  --out "$results/eval-fmnist-recon.png"
# Add what produced the figures: config, seeds, machine, wall time.
python3 - "$results/eval-fmnist-pretrain.json" "$train_s" "$ckpt" <<'PY'
import json, os, platform, sys
path, train_s, ckpt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
result = json.load(open(path))
state = json.load(open(os.path.join(ckpt, "trainer_state.json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
result.update({"train_wall_s": train_s, "train_seed": state["seed"], "optimizer_steps": state["optimizer_step"],
               "epochs": state["config"]["optim"]["epochs"], "config": state["config"],
               "machine": f"{cpu}, {os.cpu_count()} cores", "passes_0.7x": result["ratio"] <= 0.7})
json.dump(result, open(path, "w"), indent=1)
print(f"eval: ratio {result['ratio']:.3f} (must be <= 0.7), trained in {train_s} s; written to {path}")
PY
