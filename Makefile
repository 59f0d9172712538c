# maestro's entry points. Every target runs tools/bootstrap.sh first (installs what is missing,
# fast when nothing is).
SHELL := /bin/bash
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
VENV := $(shell tools/bootstrap.sh --print-venv)
PYTHON := $(VENV)/bin/python
DEMO_OUT ?= demo-output

.PHONY: all bootstrap configure build test demo eval bench bench-data bench-coordinator bench-dist bench-asha gpu-check clean

all: build

bootstrap:
	@tools/bootstrap.sh

# Configures once (again when the test environment moved to another venv); later builds re-run
# CMake by themselves when a CMakeLists.txt changes.
configure: bootstrap
	@if ! grep -qxF "MAESTRO_PYTHON:STRING=$(PYTHON)" $(BUILD_DIR)/CMakeCache.txt 2>/dev/null; then \
	  cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release \
	    -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	    -DTorch_DIR="$$($(PYTHON) -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch" \
	    -DMAESTRO_PYTHON=$(PYTHON); \
	fi

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)

demo: build
	BUILD_DIR=$(BUILD_DIR) DEMO_OUT=$(DEMO_OUT) tools/demo.sh

# Outside make test: 5 epochs of pretraining, held-out loss vs baseline, reconstruction grid.
eval: build
	BUILD_DIR=$(BUILD_DIR) tools/eval_fmnist.sh

# Forward + backward images/s of the small preset on the CPU, then its training throughput
# beside the Python reference model (same shapes, same torch, same threads), alternating in
# short rounds; both written to bench/results/.
bench: build
	@mkdir -p bench/results
	$(BUILD_DIR)/tools/maestro-bench --preset mae_vit_tiny_fmnist --batch 256 --steps 20 --threads 2 \
	  --out bench/results/cpu-tiny-fwd-bwd.json
	$(PYTHON) tools/bench_cpu_compare.py --bench $(BUILD_DIR)/tools/maestro-bench --python $(PYTHON)

# The data path: decode + RandomResizedCrop + flip images/s beside torchvision + PIL on three
# sets of photographs, and the data service's loopback MB/s; bench/results/data-path.json.
bench-data: build
	$(PYTHON) bench/data_path.py --build $(BUILD_DIR)

# The coordinator's scale check on a real server: create a 10,000-trial grid through gRPC, then
# 500 simulated busy workers heartbeat at 1 Hz for 30 s; bench/results/coordinator-scale.json.
bench-coordinator: build
	$(BUILD_DIR)/tools/maestro-bench-coordinator --experiment bench/experiments/grid-10000.yaml \
	  --db $(abspath $(BUILD_DIR))/bench-coordinator --workers 500 --seconds 30 \
	  --out bench/results/coordinator-scale.json

# Data-parallel scaling on the CPU: images/s with 1 and 2 mpirun ranks (one thread each, the same
# per-rank batch) and the all-reduce time per step; bench/results/data-parallel-cpu.json.
bench-dist: build
	$(PYTHON) bench/data_parallel.py --train $(BUILD_DIR)/tools/maestro-train

# ASHA against the full grid on a fine-tuning learning-rate sweep (9 values, reduction factor 3,
# one shared pretraining) through the real coordinator and workers: the budget each used and the
# best top-1 each found; bench/results/asha-fmnist-finetune.json (about 10 minutes here).
bench-asha: build
	$(PYTHON) bench/asha.py --build $(BUILD_DIR)

# On a GPU machine (no bootstrap there): build the LibTorch-only subset, check, measure.
gpu-check:
	tools/gpu_check.sh

clean:
	rm -rf $(BUILD_DIR) build-gpu $(DEMO_OUT) runs
