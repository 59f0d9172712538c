#!/usr/bin/env bash
# make demo: the whole system on localhost. Ingests Fashion-MNIST into RocksDB shards, starts the
# data service (maestro-data), a coordinator (maestro-coordinator) and two workers
# (maestro-worker), registers the dataset, submits a small ablation grid (mask ratio x decoder
# depth, each trial pretrained then linear-probed: configs/experiments/fmnist_demo_grid.yaml),
# shows progress, prints the results table, writes each trial's reconstruction grid, and stops
# everything it started. Everything runs secured as on a cluster: `maestro cluster init` makes
# the credentials (TLS certificates, an admin token), each worker is enrolled with its own
# token, and trainers read from the data service with the data tokens their assignments carry.
# About 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
out=${DEMO_OUT:-demo-output}
bin="$build/tools"
rm -rf "$out/coordinator" "$out/runs" "$out/workers" "$out/cluster" "$out"/reconstruction*.png
mkdir -p "$out/workers"

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

# Waits for `pattern` in `log` (a server printing its ports) while `pid` lives; prints the line.
wait_for_line() {
  local log=$1 pattern=$2 pid=$3
  for _ in $(seq 1 300); do
    if grep -q "$pattern" "$log" 2>/dev/null; then grep -m1 "$pattern" "$log"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "demo: $log:" >&2; cat "$log" >&2; return 1; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for '$pattern' in $log" >&2
  return 1
}

# 1. Fashion-MNIST (Debian's dataset-fashion-mnist) into shards; a second run reuses them.
for split in train test; do
  "$bin/maestro" data ingest --format idx --src /usr/share/datasets/fashion-mnist \
    --out "$out/data/fmnist" --split "$split" --shards 4
done

# 2. The cluster's credentials: a CA, the servers' certificates, the first admin token (which
# the maestro CLI below uses, through MAESTRO_TOKEN_FILE).
"$bin/maestro" cluster init --dir "$out/cluster" > /dev/null
export MAESTRO_CA="$out/cluster/ca.crt" MAESTRO_TOKEN_FILE="$out/cluster/admin.token"
# `maestro viz recon` reads its images from the data service as the trainers did: with a data
# token of its own.
"$bin/maestro" cluster data-token --dir "$out/cluster" --name demo --expires 2h \
  --out "$out/cluster/demo.data-token" > /dev/null
export MAESTRO_DATA_TOKEN_FILE="$out/cluster/demo.data-token"
echo "demo: secured as on a cluster: every call over TLS (CA $out/cluster/ca.crt) with a token" \
  "(yours: $out/cluster/admin.token, mode 0600, through MAESTRO_CA and MAESTRO_TOKEN_FILE);" \
  "datasets only under $out/data, trials write only under $out/runs (docs/security.md)"

# 3. The data service, the coordinator and two workers, on free ports.
"$bin/maestro-data" serve --dataset "fmnist=$out/data/fmnist" --listen 127.0.0.1:0 \
  --metrics-listen 127.0.0.1:0 --credentials "$out/cluster" > "$out/data-service.log" 2>&1 &
pids+=($!)
line=$(wait_for_line "$out/data-service.log" "listening on port" $!)
data_port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' <<< "$line")

"$bin/maestro-coordinator" --db "$out/coordinator" --runs "$out/runs" --data-root "$out/data" \
  --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --credentials "$out/cluster" \
  > "$out/coordinator.log" 2>&1 &
pids+=($!)
line=$(wait_for_line "$out/coordinator.log" "listening on port" $!)
port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' <<< "$line")
metrics_port=$(sed -n 's/.*metrics on port \([0-9]*\).*/\1/p' <<< "$line")
coordinator=127.0.0.1:$port
echo "demo: data service on 127.0.0.1:$data_port, coordinator on $coordinator" \
  "(Prometheus metrics: http://127.0.0.1:$metrics_port/metrics)"
echo "demo: to watch it, run Prometheus with deploy/prometheus/prometheus.yml (its coordinator" \
  "target set to 127.0.0.1:$metrics_port; it loads the alerting rules in" \
  "deploy/prometheus/maestro.rules.yml), and Grafana with deploy/grafana/provisioning (the" \
  "dashboards in deploy/grafana/dashboards); every series is described in docs/metrics.md"

for w in w1 w2; do
  "$bin/maestro" worker enroll "$w" --out "$out/cluster/$w.token" --coordinator "$coordinator"
  "$bin/maestro-worker" --coordinator "$coordinator" --id "$w" --slots 1 \
    --token-file "$out/cluster/$w.token" --work-dir "$out/workers/$w" --runs-root "$out/runs" \
    --data-root "$out/data" > "$out/workers/$w.log" 2>&1 &
  pids+=($!)
done

# 4. The dataset by name (trainers stream it from the service), then the sweep.
"$bin/maestro" dataset register fmnist --path "$out/data/fmnist" --service "127.0.0.1:$data_port" \
  --coordinator "$coordinator"
created=$("$bin/maestro" experiment create configs/experiments/fmnist_demo_grid.yaml \
  --coordinator "$coordinator" --json)
experiment=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["experiment"])' "$created")
"$bin/maestro" worker list --coordinator "$coordinator"

# 5. Progress every 15 s until every trial is final.
progress() {
  "$bin/maestro" experiment describe "$experiment" --coordinator "$coordinator" --json \
    > "$out/describe.json"
  python3 - "$out/describe.json" <<'PY'
import json, sys, time
d = json.load(open(sys.argv[1]))
cells = []
for t in d["trials"]:
    p, what = t.get("progress"), t["state"]
    if p and t["state"] == "running":
        what = "%s %d/%d loss %.4f" % (p["stage"], p["step"], p["total_steps"], p["loss"])
    cells.append("trial %d: %s" % (t["id"], what))
print(time.strftime("%H:%M:%S"), " | ".join(cells), flush=True)
sys.exit(0 if all(t["state"] in ("completed", "failed", "canceled") for t in d["trials"]) else 3)
PY
}
until progress; do sleep 15; done

# 6. Results (also saved as markdown and CSV) and reconstruction grids.
"$bin/maestro" experiment results "$experiment" --coordinator "$coordinator" --format markdown |
  tee "$out/results.md"
"$bin/maestro" experiment results "$experiment" --coordinator "$coordinator" --format csv \
  > "$out/results.csv"
python3 - "$out/describe.json" <<'PY' |
import json, sys
for t in json.load(open(sys.argv[1]))["trials"]:
    ckpt = (t.get("results") or {}).get("pretrain", {}).get("checkpoint")
    if ckpt:
        print(t["id"], ckpt)
PY
  while read -r trial ckpt; do
    "$bin/maestro" viz recon --checkpoint "$ckpt" --images 16 \
      --out "$out/reconstruction-trial-$trial.png" > /dev/null
  done
echo "demo: reconstructions in $out/reconstruction-trial-*.png; results in $out/results.md and" \
  "$out/results.csv; logs: maestro trial logs ID (while a coordinator runs) and $out/workers/"
