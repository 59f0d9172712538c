#!/usr/bin/env bash
# Builds the LibTorch-only subset (model, tools) on a GPU machine and runs the GPU checks and
# benchmarks in one go. The GPU machines have LibTorch (python3's torch), CMake and nvcc, and
# nothing else of ours, so this needs no bootstrap.
#
#   tools/gpu_check.sh [RESULTS_DIR]     (default: $OUT when set, else gpu-results)
#
# Writes report.txt (device, torch, check results, bench lines), build.log, bench-*.json and
# nccl-world1.json into RESULTS_DIR and prints a summary table last. Exit status: that of
# maestro-gpu-check, or 1 when the maestro-train or NCCL checks failed.
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-${OUT:-gpu-results}}
python=${MAESTRO_PYTHON:-python3}
mkdir -p "$results"
peak_tflops=${MAESTRO_PEAK_TFLOPS:-796}  # H100 bf16 matrix rate measured on these machines

report="$results/report.txt"
: >"$report"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$report"
prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$report"

echo "== configure + build (LibTorch only)"
start=$(date +%s)
if ! cmake -S . -B build-gpu -DMAESTRO_TORCH_ONLY=ON -DMAESTRO_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DTORCH_CUDA_ARCH_LIST=9.0 \
    >"$results/build.log" 2>&1; then
  tail -40 "$results/build.log"; exit 1
fi
if ! cmake --build build-gpu -j"$(nproc)" --target maestro-gpu-check maestro-bench maestro-train \
    >>"$results/build.log" 2>&1; then
  tail -60 "$results/build.log"; exit 1
fi
echo "built in $(( $(date +%s) - start )) s"

echo "== correctness"
set +e
build-gpu/tools/maestro-gpu-check | tee -a "$report"
check_status=${PIPESTATUS[0]}
set -e

# maestro-train on CUDA (bf16, fused AdamW): Fashion-MNIST test split from $MAESTRO_FMNIST_DIR
# (uncompressed IDX files; the GPU machine has no Debian data package), 60 steps, then
# --resume auto to 100. Skipped when the folder is not there.
fmnist=${MAESTRO_FMNIST_DIR:-.carry/fmnist}
if [ -f "$fmnist/t10k-images-idx3-ubyte" ]; then
  echo "== maestro-train on cuda:0" | tee -a "$report"
  train_run=/tmp/maestro-gpu-train
  rm -rf "$train_run"
  train() {
    build-gpu/tools/maestro-train pretrain --set data.path="$fmnist" --set data.split=test \
      --set run.device=cuda:0 --set run.precision=bf16 --set optim.batch_size=256 \
      --set data.num_workers=8 --set run.output_dir="$train_run" --set log.interval_steps=20 "$@" 2>&1 \
      | grep -vE '^config' | tee -a "$report"
    return "${PIPESTATUS[0]}"
  }
  set +e
  train --set optim.max_steps=60; first=$?
  train --set optim.max_steps=100 --resume auto; second=$?
  set -e
  echo "maestro-train exit statuses: $first then $second (0 0 expected)" | tee -a "$report"
  if [ "$first" != 0 ] || [ "$second" != 0 ]; then check_status=1; fi
fi

# The data-parallel NCCL back end at world size 1 (a torchrun-style launch of one process):
# 20 fp32 steps on cuda:0 against the same 20 on the CPU, every parameter tensor within 1e-3
# relative; then bf16 autocast on NCCL, its loss curve within 2% of the fp32 one at every step.
if [ -f "$fmnist/t10k-images-idx3-ubyte" ]; then
  echo "== NCCL back end at world size 1 against the CPU" | tee -a "$report"
  dist_run=/tmp/maestro-gpu-dist
  rm -rf "$dist_run"
  dist_train() {  # output folder, then flags
    local out=$1; shift
    build-gpu/tools/maestro-train pretrain --set data.path="$fmnist" --set data.split=test \
      --set optim.batch_size=64 --set optim.max_steps=20 --set optim.warmup_epochs=0.01 \
      --set log.interval_steps=1 --set checkpoint.interval_steps=20 --set data.num_workers=4 \
      --set run.output_dir="$out" "$@" 2>&1 | grep -E 'data-parallel|completed|error' | tee -a "$report"
    return "${PIPESTATUS[0]}"
  }
  set +e
  dist_train "$dist_run/cpu" --set run.device=cpu --set run.precision=fp32 --set run.threads=8
  a=$?
  (
    export RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29517
    dist_train "$dist_run/nccl-fp32" --set run.device=cuda --set run.precision=fp32 &&
      dist_train "$dist_run/nccl-bf16" --set run.device=cuda --set run.precision=bf16
  )
  b=$?
  "$python" tools/compare_runs.py --reference "$dist_run/cpu" --other "$dist_run/nccl-fp32" --step 20 \
    --param-tol 1e-3 --curve "$dist_run/nccl-bf16" --curve-reference "$dist_run/nccl-fp32" \
    --loss-tol 0.02 --out "$results/nccl-world1.json" | tee -a "$report"
  c=${PIPESTATUS[0]}
  set -e
  echo "NCCL checks: train $a $b, comparison $c (0 0 0 expected)" | tee -a "$report"
  if [ "$a" != 0 ] || [ "$b" != 0 ] || [ "$c" != 0 ]; then check_status=1; fi
fi

echo "== throughput (forward + backward)"
bench() {  # name, then maestro-bench flags
  local name=$1; shift
  build-gpu/tools/maestro-bench --device cuda:0 --peak-tflops "$peak_tflops" \
    --out "$results/bench-$name.json" "$@" 2>&1 | tee -a "$report"
}
bench vit-b-fp32 --preset mae_vit_base_patch16 --batch 256 --steps 20 --warmup 5 --precision fp32
bench vit-b-bf16 --preset mae_vit_base_patch16 --batch 256 --steps 20 --warmup 5 --precision bf16
bench vit-b-bf16-adamw --preset mae_vit_base_patch16 --batch 256 --steps 20 --warmup 5 \
  --precision bf16 --optimizer
bench tiny-bf16 --preset mae_vit_tiny_fmnist --batch 1024 --steps 20 --warmup 5 --precision bf16

echo "== Python reference in the same run (Hugging Face ViTMAE, eager, bf16 autocast)"
"$python" tools/bench_python_reference.py --batch 256 --steps 20 --warmup 5 \
  --out "$results/bench-python-hf-vit-b-bf16.json" 2>&1 | tee -a "$report" || true

echo "== summary"
grep -E 'img/s' "$report" || true
exit "$check_status"
