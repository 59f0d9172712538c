#!/usr/bin/env bash
# make demo: ingests Fashion-MNIST into RocksDB shards, starts the data service (maestro-data)
# on localhost, pretrains the small MAE preset from it for 2 epochs (about 3 minutes on 2
# cores), writes the reconstruction grid and the held-out loss, then linear-probes the encoder
# it pretrained for one epoch (about a minute, data from the service too) and reports its
# top-1 / top-5 on the held-out test split. Later issues add the coordinator and workers.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
out=${DEMO_OUT:-demo-output}
rm -rf "$out/run" "$out/linprobe"
mkdir -p "$out"

# 1. Fashion-MNIST (Debian's dataset-fashion-mnist) into shards; a second run reuses them.
for split in train test; do
  "$build/tools/maestro" data ingest --format idx --src /usr/share/datasets/fashion-mnist \
    --out "$out/data/fmnist" --split "$split" --shards 4
done

# 2. The data service on a free port, stopped when the demo ends.
"$build/tools/maestro-data" serve --dataset "fmnist=$out/data/fmnist" --listen 127.0.0.1:0 \
  --metrics-listen 127.0.0.1:0 > "$out/data-service.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on port" "$out/data-service.log" 2>/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$out/data-service.log"; exit 1; }
  sleep 0.1
done
read -r port metrics_port < <(sed -n 's/.*listening on port \([0-9]*\), metrics on port \([0-9]*\).*/\1 \2/p' \
  "$out/data-service.log")
echo "demo: data service on 127.0.0.1:$port (Prometheus metrics: http://127.0.0.1:$metrics_port/metrics)"
data=(--set data.source=shards --set data.path="$out/data/fmnist" --set data.dataset=fmnist
      --set data.service=127.0.0.1:$port)

# 3. Pretraining, reconstructions, linear probing.
"$build/tools/maestro-train" pretrain --config configs/fmnist_pretrain.yaml "${data[@]}" \
  --set run.output_dir="$out/run" --set optim.epochs=2 --set optim.warmup_epochs=0.5
ckpt="$out/run/checkpoints/$(ls "$out/run/checkpoints" | grep '^step-' | sort | tail -1)"
"$build/tools/maestro" eval recon --checkpoint "$ckpt" --images 10000
"$build/tools/maestro" viz recon --checkpoint "$ckpt" --images 16 --out "$out/reconstruction.png"
"$build/tools/maestro-train" linprobe --config configs/fmnist_linprobe.yaml "${data[@]}" \
  --set classify.pretrained="$ckpt" --set run.output_dir="$out/linprobe" \
  --set optim.epochs=1 --set optim.warmup_epochs=0.1
served=$(python3 -c 'import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
print(sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith("maestro_data_samples_served_total{")))' \
  "http://127.0.0.1:$metrics_port/metrics")
python3 - "$out/linprobe/result.json" "$served" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["final"]
print(f"demo: the data service served {float(sys.argv[2]):.0f} samples")
print(f"demo: linear probe of the pretrained encoder: top-1 {f['top1']:.2f}%, top-5 {f['top5']:.2f}% "
      f"on the {f['samples']} held-out test images (1 epoch, frozen encoder, BatchNorm + linear head, LARS)")
PY
echo "demo: open $out/reconstruction.png; metrics per step in $out/run/metrics.jsonl and $out/linprobe/metrics.jsonl"
