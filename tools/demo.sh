#!/usr/bin/env bash
# make demo: pretrains the small MAE preset on Fashion-MNIST for 2 epochs (about 3 minutes on
# 2 cores), then writes the reconstruction grid and the held-out loss. Later issues grow this
# into the whole system (coordinator, workers, data service) on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
out=${DEMO_OUT:-demo-output}
rm -rf "$out/run"
mkdir -p "$out"
"$build/tools/maestro-train" pretrain --config configs/fmnist_pretrain.yaml \
  --set run.output_dir="$out/run" --set optim.epochs=2 --set optim.warmup_epochs=0.5
ckpt="$out/run/checkpoints/$(ls "$out/run/checkpoints" | grep '^step-' | sort | tail -1)"
"$build/tools/maestro" eval recon --checkpoint "$ckpt" --images 10000
"$build/tools/maestro" viz recon --checkpoint "$ckpt" --images 16 --out "$out/reconstruction.png"
echo "demo: open $out/reconstruction.png; metrics per step in $out/run/metrics.jsonl"
