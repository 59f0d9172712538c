#!/usr/bin/env bash
# make demo: pretrains the small MAE preset on Fashion-MNIST for 2 epochs (about 3 minutes on
# 2 cores), writes the reconstruction grid and the held-out loss, then linear-probes the
# encoder it pretrained for one epoch (about a minute) and reports its top-1 / top-5 on the
# held-out test split. Later issues grow this into the whole system (coordinator, workers,
# data service) on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
out=${DEMO_OUT:-demo-output}
rm -rf "$out/run" "$out/linprobe"
mkdir -p "$out"
"$build/tools/maestro-train" pretrain --config configs/fmnist_pretrain.yaml \
  --set run.output_dir="$out/run" --set optim.epochs=2 --set optim.warmup_epochs=0.5
ckpt="$out/run/checkpoints/$(ls "$out/run/checkpoints" | grep '^step-' | sort | tail -1)"
"$build/tools/maestro" eval recon --checkpoint "$ckpt" --images 10000
"$build/tools/maestro" viz recon --checkpoint "$ckpt" --images 16 --out "$out/reconstruction.png"
"$build/tools/maestro-train" linprobe --config configs/fmnist_linprobe.yaml \
  --set classify.pretrained="$ckpt" --set run.output_dir="$out/linprobe" \
  --set optim.epochs=1 --set optim.warmup_epochs=0.1
python3 - "$out/linprobe/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["final"]
print(f"demo: linear probe of the pretrained encoder: top-1 {f['top1']:.2f}%, top-5 {f['top5']:.2f}% "
      f"on the {f['samples']} held-out test images (1 epoch, frozen encoder, BatchNorm + linear head, LARS)")
PY
echo "demo: open $out/reconstruction.png; metrics per step in $out/run/metrics.jsonl and $out/linprobe/metrics.jsonl"
