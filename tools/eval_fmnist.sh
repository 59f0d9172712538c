#!/usr/bin/env bash
# make eval: pretrains the small preset on Fashion-MNIST for 5 epochs (configs/fmnist_pretrain.yaml,
# about 7-8 minutes on 2 cores; a finished run in runs/eval-fmnist with the same config is
# reused), measures the masked-patch loss on the 10,000 held-out test images against the
# mean-of-visible-patches baseline and draws the reconstruction grid; then linear probing and
# fine-tuning, MAE encoder against a random / from-scratch baseline, 3 seeds each
# (tools/eval_classify.py, about 25 minutes).
# Results: bench/results/eval-fmnist-pretrain.json, eval-fmnist-recon.png and
# eval-fmnist-classify.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
run=runs/eval-fmnist
results=bench/results
mkdir -p "$results"
pretrain() {
  "$build/tools/maestro-train" pretrain --config configs/fmnist_pretrain.yaml \
    --set run.output_dir="$run" "$@"
}
reused=0
[ -f "$run/result.json" ] && reused=1
start=$(date +%s)
if ! pretrain --resume auto; then
  echo "eval: the run in $run cannot be continued (another config or version); starting afresh"
  rm -rf "$run"
  reused=0
  start=$(date +%s)
  pretrain
fi
train_s=$(( $(date +%s) - start ))
ckpt="$run/checkpoints/$(ls "$run/checkpoints" | grep '^step-' | sort | tail -1)"
"$build/tools/maestro" eval recon --checkpoint "$ckpt" --split test --images 10000 --seed 0 \
  --out "$results/eval-fmnist-pretrain.json"
"$build/tools/maestro" viz recon --checkpoint "$ckpt" --split test --images 16 --seed 0 \
  --out "$results/eval-fmnist-recon.png"
# Add what produced the figures: config, seeds, machine, wall time.
python3 - "$results/eval-fmnist-pretrain.json" "$train_s" "$ckpt" "$reused" <<'PY'
import json, os, platform, sys
path, train_s, ckpt, reused = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
result = json.load(open(path))
state = json.load(open(os.path.join(ckpt, "trainer_state.json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
result.update({"train_wall_s": train_s, "pretraining_reused_from_an_earlier_make_eval": reused, "train_seed": state["seed"], "optimizer_steps": state["optimizer_step"],
               "epochs": state["config"]["optim"]["epochs"], "config": state["config"],
               "machine": f"{cpu}, {os.cpu_count()} cores", "passes_0.7x": result["ratio"] <= 0.7})
json.dump(result, open(path, "w"), indent=1)
print(f"eval: ratio {result['ratio']:.3f} (must be <= 0.7), trained in {train_s} s; written to {path}")
PY
python3 tools/eval_classify.py --train "$build/tools/maestro-train" --pretrained "$ckpt" \
  --out "$results/eval-fmnist-classify.json"
