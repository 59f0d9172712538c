#!/usr/bin/env bash
# Installs what maestro needs to build and test, only what is missing, and says what it installs.
#
#   tools/bootstrap.sh            Debian packages + the Python virtual environment
#   tools/bootstrap.sh --print-venv   prints the venv path and exits (used by the Makefile)
#
# The virtual environment (torch for LibTorch, plus the test-only oracles) lives outside the
# checkout, in a per-user cache folder keyed by the pinned versions, so a fresh clone reuses it
# instead of downloading gigabytes again. Override the folder with MAESTRO_CACHE.
set -euo pipefail

# Pinned Python packages. Changing a pin changes the venv key, so a new venv is built beside
# the old one and nothing half-upgraded is ever used.
PY_PINS=(torch==2.11.0 torchvision==0.26.0 timm==1.0.31 transformers==5.24.0 safetensors==0.8.0 numpy==2.4.6)

DEBIAN_PACKAGES=(
  build-essential cmake make pkg-config ccache git
  libopenblas0-pthread zlib1g-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev openssl
  librocksdb-dev prometheus-cpp-dev
  openmpi-bin libopenmpi-dev
  libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  dataset-fashion-mnist
  plasma-workspace-wallpapers  # test photographs (the data path's image-folder tests, benchmarks)
  prometheus  # a real Prometheus server scrapes the processes' /metrics in the tests
  iproute2  # network namespaces: the multi-host test puts each host on a network stack of its own
  slurmctld slurmd slurm-client munge  # the Slurm test cluster (tools/slurm_cluster.sh)
  python3-venv
)

cache_root="${MAESTRO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro}"
python_bin="${MAESTRO_PYTHON:-python3}"
venv_key=$(printf '%s\n' "$("$python_bin" -c 'import sys; print(sys.version.split()[0])')" "${PY_PINS[@]}" \
  | sha256sum | cut -c1-12)
venv_dir="$cache_root/venv-$venv_key"

if [[ "${1:-}" == "--print-venv" ]]; then
  echo "$venv_dir"
  exit 0
fi

log() { printf 'bootstrap: %s\n' "$*"; }

install_debian_packages() {
  local missing=()
  local pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  # python3-venv is Debian's (it brings ensurepip); an interpreter that has ensurepip already
  # (pyenv's, say) needs no package.
  if [[ " ${missing[*]} " == *" python3-venv "* ]] && "$python_bin" -c 'import ensurepip' >/dev/null 2>&1; then
    missing=("${missing[@]/python3-venv/}")
    read -r -a missing <<<"${missing[*]}"
  fi
  if ((${#missing[@]} == 0)); then
    return
  fi
  log "installing Debian packages: ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_venv() {
  # The .complete marker is written last: a venv without it is half-built and is rebuilt.
  if [[ -f "$venv_dir/.complete" ]]; then
    return
  fi
  log "creating the Python environment $venv_dir (${PY_PINS[*]})"
  mkdir -p "$cache_root"
  rm -rf "$venv_dir"
  "$python_bin" -m venv "$venv_dir"
  "$venv_dir/bin/pip" install --quiet --upgrade pip
  "$venv_dir/bin/pip" install --quiet "${PY_PINS[@]}"
  touch "$venv_dir/.complete"
}

install_debian_packages
install_venv
